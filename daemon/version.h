/* version — the one place lockstep's version is written. */
#ifndef LS_VERSION_H
#define LS_VERSION_H

#define LS_VERSION "0.1.0"

#endif
