#!/usr/bin/python3
"""tools/bench --self-test: the harness's rules for what a figure means, checked without
DPDK, root or a single packet (tools/test.sh runs it as test "bench-selftest"). Each test
names the hole it keeps closed (issue 14, "checks that cannot pass by accident")."""
import contextlib
import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from honesty import (FAILED, INVALID, MET, MISSED, compare, cycles_above, drop_deltas,  # noqa: E402
                     invalid_reasons, median_run, overall_verdict, parse_testpmd_exit, round_verdict, running_rate,
                     target, uncounted_loss, verdict_text, window_rates)
from ovs import parse_dump_ports  # noqa: E402
import report  # noqa: E402

TESTPMD_EXIT = """
Telling cores to stop...
Waiting for lcores to finish...

  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 123456789      RX-dropped: 0             RX-total: 123456789
  TX-packets: 0              TX-dropped: 0             TX-total: 0
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 123456789      RX-dropped: 0             RX-total: 123456789
  TX-packets: 123456000      TX-dropped: 789           TX-total: 123456789
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++

Done.
"""

DUMP_PORTS = """OFPST_PORT reply (xid=0x2): 3 ports
  port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=0, bytes=0, drop=0, errs=0, coll=0
  port  1: rx pkts=1000, bytes=60000, drop=7, errs=?, frame=?, over=?, crc=?
           tx pkts=0, bytes=0, drop=0, errs=0, coll=?
  port  2: rx pkts=0, bytes=0, drop=0, errs=0, frame=?, over=?, crc=?
           tx pkts=990, bytes=59400, drop=3, errs=0, coll=?
"""


def run_row(app, mpps, cycles, valid=True, round_no=1, **kw):
    return {"case": "64B/1M flows", "app": app, "mpps": mpps, "cycles_per_packet": cycles, "valid": valid,
            "invalid_reasons": [] if valid else ["forwarded 95.00% < 99%"], "round": round_no, **kw}


class Rates(unittest.TestCase):
    def test_rate_is_packets_forwarded_not_received(self):
        # An app that receives 10M packets a second and forwards 9M is a 9 Mpps app.
        r = window_rates(received=10_000_000, forwarded_packets=9_000_000, wall=1.0, worker_ns=1e9, hz=2e9)
        self.assertAlmostEqual(r["mpps"], 9.0)
        self.assertAlmostEqual(r["rx_mpps"], 10.0)
        self.assertAlmostEqual(r["forwarded"], 0.9)
        self.assertAlmostEqual(r["cycles_per_packet"], 2e9 / 9e6)  # per packet forwarded

    def test_no_tsc_rate_gives_no_cycles(self):
        self.assertIsNone(window_rates(100, 100, 1.0, 1e9, 0)["cycles_per_packet"])


class Validity(unittest.TestCase):
    def test_clean_row_is_valid(self):
        c0 = {"drop_counters": {"port 0 rx_nombuf": 5, "drops_total": 2}}
        self.assertEqual(invalid_reasons(1000, 1000, drop_deltas(c0, c0)), [])

    def test_forwarding_under_99_percent_is_invalid(self):
        self.assertEqual(invalid_reasons(1000, 989, {}), ["forwarded 98.90% < 99%"])
        self.assertEqual(invalid_reasons(1000, 990, {}), [])

    def test_any_drop_counter_that_grew_makes_it_invalid(self):
        c0 = {"drop_counters": {"port 0 rx_nombuf": 5, "port 0 imissed": 0, "port 1 oerrors": 0}}
        c1 = {"drop_counters": {"port 0 rx_nombuf": 5, "port 0 imissed": 1, "port 1 oerrors": 0}}
        drops = drop_deltas(c0, c1)
        self.assertEqual(drops, {"port 0 imissed": 1})
        # One dropped packet in a million forwarded is enough.
        self.assertEqual(invalid_reasons(1_000_001, 1_000_000, drops), ["port 0 imissed +1"])

    def test_unreadable_counter_is_left_out(self):
        c0 = {"drop_counters": {"port 1 rx errs": None}}
        c1 = {"drop_counters": {"port 1 rx errs": None}}
        self.assertEqual(drop_deltas(c0, c1), {})

    def test_a_shortfall_within_the_read_skew_is_still_invalid(self):
        # A starved worker: the counters' reads were far apart; the row cannot show it
        # forwarded 99%, so it does not count, and the reason says why.
        reasons = invalid_reasons(1_000_000, 988_800, {}, skew_packets=20_000)
        self.assertEqual(len(reasons), 1)
        self.assertTrue(reasons[0].startswith("forwarded 98.88% < 99% (within the 20000 packets"))
        self.assertEqual(invalid_reasons(1_000_000, 988_800, {}, skew_packets=5_000), ["forwarded 98.88% < 99%"])

    def test_nothing_received_is_invalid(self):
        self.assertEqual(invalid_reasons(0, 0, {}), ["received nothing"])

    def test_uncounted_loss_beyond_the_read_skew(self):
        # 10 Mpps, counters read within 100 us: 1000 + 4096 in flight explain a gap ...
        self.assertEqual(uncounted_loss(10_000_000, 9_995_000, 0, 10e6, 100e-6), 0)
        # ... 10,000 packets do not.
        self.assertEqual(uncounted_loss(10_000_000, 9_990_000, 0, 10e6, 100e-6), 10_000)
        # Counted drops are accounted for (and make the row invalid on their own).
        self.assertEqual(uncounted_loss(10_000_000, 9_990_000, 10_000, 10e6, 100e-6), 0)
        self.assertIn("10000 packets received, not forwarded and not counted",
                      invalid_reasons(10_000_000, 9_990_000, {}, uncounted=10_000))

    def test_read_skew_is_judged_at_the_rate_the_worker_runs(self):
        # 8 Mpps on average with a tenth of a core: 80 Mpps while it runs.
        self.assertAlmostEqual(running_rate(8_000_000, 1.0, 0.1e9), 80e6)
        self.assertAlmostEqual(running_rate(8_000_000, 1.0, 1.0e9), 8e6)
        self.assertAlmostEqual(running_rate(8_000_000, 1.0, 0), 8e6)

    def test_testpmd_tx_dropped_from_its_exit_statistics(self):
        self.assertEqual(parse_testpmd_exit(TESTPMD_EXIT), 789)
        self.assertIsNone(parse_testpmd_exit("EAL: Error - exiting with code: 1\n"))

    def test_ovs_port_drops_and_unknown_counters(self):
        ports = parse_dump_ports(DUMP_PORTS)
        self.assertEqual(ports[1]["rx_drop"], 7)
        self.assertIsNone(ports[1]["rx_errs"])
        self.assertEqual(ports[2]["tx"], 990)
        self.assertEqual(ports[2]["tx_drop"], 3)


class Verdicts(unittest.TestCase):
    def test_round_verdict(self):
        self.assertEqual(round_verdict(0.6, 0.5, True), MET)
        self.assertEqual(round_verdict(0.5, 0.5, True), MET)
        self.assertEqual(round_verdict(0.49, 0.5, True), MISSED)
        self.assertEqual(round_verdict(0.9, 0.5, False), INVALID)  # invalid whatever the value
        self.assertEqual(round_verdict(None, 0.5, True), FAILED)
        self.assertEqual(round_verdict(40, 50, True, at_most=True), MET)

    def test_met_only_when_every_round_meets_it(self):
        self.assertEqual(overall_verdict([MET, MET, MET]), MET)
        self.assertEqual(overall_verdict([MET, MISSED, MET]), MISSED)
        self.assertEqual(overall_verdict([MET, INVALID, MET]), INVALID)
        self.assertEqual(overall_verdict([MET, FAILED, MET]), FAILED)
        self.assertEqual(overall_verdict([INVALID, MISSED]), MISSED)
        self.assertEqual(overall_verdict([]), FAILED)

    def test_a_median_that_meets_does_not_hide_a_round_that_missed(self):
        rounds = [run_row("sluice-ct", m, 100, round_no=k + 1, ratio_vs_l3fwd=q, ratio_valid=True)
                  for k, (m, q) in enumerate(((6.0, 0.6), (4.5, 0.45), (7.0, 0.7)))]
        row = median_run(rounds)
        self.assertEqual(row["ratio_vs_l3fwd"], 0.6)  # the median round
        values, verdicts, overall = target(row, "0.5x", "ratio_vs_l3fwd", 0.5, "ratio_valid")
        self.assertEqual(values, [0.6, 0.45, 0.7])
        self.assertEqual(verdicts, [MET, MISSED, MET])
        self.assertEqual(overall, MISSED)
        self.assertEqual(row["targets"][0]["verdict"], MISSED)
        self.assertEqual(verdict_text(values, verdicts, overall, ".2f", "x"),
                         "MISSED (rounds: 0.60x met, 0.45x MISSED, 0.70x met)")

    def test_a_ratio_over_an_invalid_row_cannot_be_met(self):
        # The app forwarded 95% (invalid) but its ratio to l3fwd clears the target; and an
        # invalid l3fwd round makes every ratio to it invalid too.
        app_bad = compare([run_row("l3fwd", 10.0, 50), run_row("sluice-ct", 9.0, 60, valid=False)])[1]
        self.assertFalse(app_bad["ratio_valid"])
        self.assertEqual(round_verdict(app_bad["ratio_vs_l3fwd"], 0.5, app_bad["ratio_valid"]), INVALID)
        base_bad = compare([run_row("l3fwd", 10.0, 50, valid=False), run_row("sluice-ct", 9.0, 60)])[1]
        self.assertFalse(base_bad["ratio_valid"])
        ok = compare([run_row("l3fwd", 10.0, 50), run_row("sluice-ct", 9.0, 60)])[1]
        self.assertTrue(ok["ratio_valid"])
        self.assertAlmostEqual(ok["ratio_vs_l3fwd"], 0.9)

    def test_median_row_is_invalid_when_any_round_was(self):
        rounds = [run_row("sluice", 10.0, 90, round_no=1), run_row("sluice", 11.0, 85, valid=False, round_no=2),
                  run_row("sluice", 12.0, 80, round_no=3)]
        row = median_run(rounds)
        self.assertEqual(row["mpps"], 11.0)
        self.assertFalse(row["valid"])
        self.assertEqual(row["invalid_reasons"], ["round 2: forwarded 95.00% < 99%"])
        self.assertEqual([r["round"] for r in row["rounds"]], [1, 2, 3])

    def test_a_failed_round_makes_the_row_invalid(self):
        failed = {"app": "sluice", "mpps": None, "valid": False, "invalid_reasons": ["failed: did not start"],
                  "round": 2}
        row = median_run([run_row("sluice", 10.0, 90), failed, run_row("sluice", 12.0, 80, round_no=3)])
        self.assertFalse(row["valid"])
        self.assertIn("round 2: failed: did not start", row["invalid_reasons"])
        self.assertIn("1 failed", row["notes"])


class CyclesAboveTestpmd(unittest.TestCase):
    def test_cycles_above_testpmd_io(self):
        self.assertEqual(cycles_above(93, 37), 56)
        self.assertIsNone(cycles_above(93, None))
        rows = compare([run_row("testpmd", 17.0, 135), run_row("l3fwd", 13.3, 173), run_row("sluice", 12.3, 187)])
        above = {r["app"]: r["cycles_above_testpmd"] for r in rows}
        self.assertEqual(above, {"testpmd": 0, "l3fwd": 38, "sluice": 52})
        # By rate 0.92x, but above the harness Sluice spends 52 cycles to l3fwd's 38.
        self.assertAlmostEqual(rows[2]["ratio_vs_l3fwd"], 12.3 / 13.3)

    def test_no_testpmd_no_figure(self):
        rows = compare([run_row("l3fwd", 13.3, 173), run_row("sluice", 12.3, 187)])
        self.assertIsNone(rows[1]["cycles_above_testpmd"])


class Report(unittest.TestCase):
    def test_router_target_prints_every_round(self):
        rounds = {app: [run_row(app, m, c, round_no=k + 1) for k, (m, c) in enumerate(runs)]
                  for app, runs in (("testpmd", ((60, 37), (61, 37), (59, 38))),
                                    ("l3fwd", ((40, 54), (42, 53), (41, 54))),
                                    ("sluice", ((41, 53), (40, 55), (43, 52))))}
        for k in range(3):
            compare([rounds[app][k] for app in rounds])
        rows = compare([median_run(rounds[app]) for app in rounds])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report.print_router_targets(rows)
            report.print_invalid(rows)
        text = out.getvalue()
        self.assertIn("MISSED (rounds: 1.02x met, 0.95x MISSED, 1.05x met)", text)
        self.assertIn("1.00x l3fwd-lpm (median), 1.02x by cycles; above testpmd io 16 cyc/pkt, l3fwd 17", text)
        self.assertIn("Every row is valid", text)
        sluice = next(r for r in rows if r["app"] == "sluice")
        self.assertEqual(sluice["targets"][0]["verdicts"], [MET, MISSED, MET])

    def test_invalid_rows_are_listed_with_their_reasons(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report.print_invalid([run_row("l3fwd", 10.0, 50, valid=False)])
        self.assertIn("64B/1M flows, l3fwd: forwarded 95.00% < 99%", out.getvalue())

    def test_every_suite_writes_the_same_leading_keys(self):
        import afxdp  # noqa: F401  (it builds its keys from report.ROW_KEYS)
        for key in ("case", "app", "mpps", "ratio_vs_l3fwd", "cycles_per_packet", "forwarded", "notes", "rx_mpps",
                    "cycles_above_testpmd", "valid", "invalid_reasons", "rounds", "targets"):
            self.assertIn(key, report.ROW_KEYS)


if __name__ == "__main__":
    result = unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[1:], exit=False).result
    print(f"bench self-test: {result.testsRun - len(result.failures) - len(result.errors)} passed, "
          f"{len(result.failures) + len(result.errors)} failed, {len(result.skipped)} skipped")
    sys.exit(0 if result.wasSuccessful() and not result.skipped and result.testsRun else 1)
