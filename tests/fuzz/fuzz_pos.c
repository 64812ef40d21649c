/* libFuzzer target for lib/pos's parsers.
 *
 * The input (as a C string) goes to the LSN, GTID set and binlog position
 * parsers; whatever parses must format and parse back to the same value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pos.h"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_pos: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct ls_err err;
	char buf[8192];

	uint64_t lsn, lsn2;
	if (ls_lsn_parse(s, &lsn, &err) == 0) {
		if (ls_lsn_format(lsn, buf, LS_LSN_TEXT_MAX) < 0 ||
		    ls_lsn_parse(buf, &lsn2, &err) < 0 || lsn2 != lsn)
			die("LSN does not round-trip");
	}

	struct ls_gtid_set g, g2;
	if (ls_gtid_set_parse(s, &g, &err) == 0) {
		for (unsigned i = 1; i < g.n; i++)
			if (g.g[i - 1].domain >= g.g[i].domain)
				die("GTID set not sorted");
		if (ls_gtid_set_format(&g, buf, sizeof buf) < 0 ||
		    ls_gtid_set_parse(buf, &g2, &err) < 0 || !ls_gtid_set_equal(&g, &g2) ||
		    !ls_gtid_set_contains(&g, &g2) || !ls_gtid_set_contains(&g2, &g))
			die("GTID set does not round-trip");
	}

	struct ls_binlog_pos b, b2;
	if (ls_binlog_pos_parse(s, &b, &err) == 0) {
		if (ls_binlog_pos_format(&b, buf, sizeof buf) < 0 ||
		    ls_binlog_pos_parse(buf, &b2, &err) < 0 || ls_binlog_pos_cmp(&b, &b2) != 0)
			die("binlog position does not round-trip");
	}
	free(s);
	return 0;
}
