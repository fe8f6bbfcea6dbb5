"""What makes a benchmark row count (issue 14, "checks that cannot pass by accident"):
rates from packets forwarded, the rules that make a row invalid, each target's verdict
in every round, and the cycles a packet costs above testpmd io (the harness's own cost).
Pure functions, no DPDK and no processes: tools/bench --self-test checks them."""

MIN_FORWARDED = 0.99        # port 1 tx / port 0 rx below this: the row is invalid
# Packets an app may hold between RX and TX (a burst or two, per-port TX buffers) when
# the window's counters are read; with the counters' read skew, the slack before packets
# that were received, not sent and not counted anywhere are called lost.
INFLIGHT_PACKETS = 4096

MET, MISSED, INVALID, FAILED = "met", "MISSED", "INVALID", "FAILED"

# Per-round fields a row keeps in "rounds" (the row itself is the median round's).
ROUND_KEYS = ("round", "mpps", "rx_mpps", "cycles_per_packet", "cycles_above_testpmd", "forwarded", "valid",
              "invalid_reasons", "ratio_vs_l3fwd", "ratio_vs_l3fwd_cycles", "ratio_valid", "ratio_vs_ovs",
              "ratio_vs_ovs_cycles", "ratio_vs_ovs_new_flows", "ovs_ratio_valid", "new_flows_per_s",
              "new_flows_per_cpu_s", "gbps", "host_mpps", "ratio_vs_af_packet", "ratio_vs_af_packet_cycles")


def window_rates(received, forwarded_packets, wall, worker_ns, hz):
    """A window's figures: Mpps and cycles per packet from the packets forwarded (port 1
    tx), never from those received, so an app that drops cannot look fast; rx_mpps and
    forwarded (the share) beside them."""
    return {"mpps": forwarded_packets / wall / 1e6, "rx_mpps": received / wall / 1e6,
            "cycles_per_packet": worker_ns * 1e-9 * hz / forwarded_packets if hz and forwarded_packets else None,
            "forwarded": forwarded_packets / received if received else None,
            "cpu": worker_ns * 1e-9 / wall}


def drop_deltas(c0, c1):
    """{counter: increase} for each drop counter ("drop_counters" of two samples) that grew.
    A counter the app cannot read (None) is left out."""
    d0, d1 = c0.get("drop_counters", {}), c1.get("drop_counters", {})
    out = {}
    for name, after in d1.items():
        before = d0.get(name)
        if after is not None and before is not None and after > before:
            out[name] = after - before
    return out


def running_rate(received, wall, worker_ns):
    """Packets a second while the worker runs: a worker that had a tenth of its core moves
    packets in bursts at ten times its average rate, and the counters' read skew must be
    judged at that rate."""
    average = received / wall if wall else 0
    return max(average, received / (worker_ns * 1e-9)) if worker_ns else average


def skew_packets(rate_pps, read_seconds):
    """Packets the counters' read skew (rate x the seconds the two samples took to read)
    and the packets in flight inside the app can hide or show."""
    return rate_pps * read_seconds + INFLIGHT_PACKETS


def uncounted_loss(received, forwarded_packets, accounted, rate_pps, read_seconds):
    """Packets received in the window but neither forwarded nor counted as dropped or sent
    elsewhere, beyond what skew_packets explains; 0 when within that."""
    lost = received - forwarded_packets - accounted
    return lost if lost > skew_packets(rate_pps, read_seconds) else 0


def invalid_reasons(received, forwarded_packets, drops, uncounted=0, extra=(), skew_packets=0):
    """Why a row cannot count, [] when it can: it forwarded under MIN_FORWARDED of what it
    received, or any drop counter grew, or packets went missing uncounted, or `extra`
    (e.g. testpmd's exit statistics missing). skew_packets: what the counters' read skew
    and the packets in flight could account for; a shortfall within it is still invalid
    (the counters cannot show the row forwarded enough), and the reason says so."""
    reasons = []
    if not received:
        reasons.append("received nothing")
    elif forwarded_packets / received < MIN_FORWARDED:
        why = f"forwarded {forwarded_packets / received:.2%} < {MIN_FORWARDED:.0%}"
        if received - forwarded_packets <= skew_packets:
            why += (f" (within the {skew_packets:.0f} packets the counters' read skew and packets in flight "
                    "can explain: the worker was too starved to tell)")
        reasons.append(why)
    reasons.extend(f"{name} +{n}" for name, n in sorted(drops.items()))
    if uncounted:
        reasons.append(f"{uncounted} packets received, not forwarded and not counted")
    reasons.extend(extra)
    return reasons


def cycles_above(cycles, testpmd_cycles):
    """Cycles a packet costs above testpmd io's in the same case and round: the app's own
    work, without the replay's copy and the null PMD's free that every app pays."""
    if cycles is None or testpmd_cycles is None:
        return None
    return cycles - testpmd_cycles


def round_verdict(value, threshold, valid, at_most=False):
    """One round against a target: FAILED (no value), INVALID (a row it rests on is
    invalid, whatever the value), met or MISSED."""
    if value is None:
        return FAILED
    if not valid:
        return INVALID
    return MET if (value <= threshold if at_most else value >= threshold) else MISSED


def overall_verdict(verdicts):
    """met only when every round met the target; otherwise the worst: MISSED, then
    INVALID, then FAILED."""
    if verdicts and all(v == MET for v in verdicts):
        return MET
    for v in (MISSED, INVALID, FAILED):
        if v in verdicts:
            return v
    return FAILED


def compare(rows):
    """Ratios between the apps of one case in one round (or between the median rows):
    to l3fwd, to the Open vSwitch peer, and cycles above testpmd io. A ratio is valid only
    when both rows it divides are. `ovs_peer` maps an app to its OVS peer."""
    from common import OVS_PEER  # here, so the pure helpers above import nothing
    by_app = {r["app"]: r for r in rows}
    base = by_app.get("l3fwd") if (by_app.get("l3fwd") or {}).get("mpps") else None
    io = by_app.get("testpmd") if (by_app.get("testpmd") or {}).get("mpps") else None
    for r in rows:
        mine = r.get("cycles_per_packet")
        r["ratio_vs_l3fwd"] = r["mpps"] / base["mpps"] if base and r.get("mpps") else None
        theirs = base and base.get("cycles_per_packet")
        r["ratio_vs_l3fwd_cycles"] = theirs / mine if mine and theirs else None
        r["ratio_valid"] = bool(base and r.get("valid") and base.get("valid"))
        r["cycles_above_testpmd"] = cycles_above(mine, io.get("cycles_per_packet")) if io and r.get("mpps") else None
        peer = by_app.get(OVS_PEER.get(r["app"]))
        if peer and peer.get("mpps") and r.get("mpps"):
            r["ratio_vs_ovs"] = r["mpps"] / peer["mpps"]
            r["ovs_ratio_valid"] = bool(r.get("valid") and peer.get("valid"))
            if mine and peer.get("cycles_per_packet"):
                r["ratio_vs_ovs_cycles"] = peer["cycles_per_packet"] / mine
            if r.get("new_flows_per_s") and peer.get("new_flows_per_s") and r.get("workload") == "new":
                r["ratio_vs_ovs_new_flows"] = r["new_flows_per_s"] / peer["new_flows_per_s"]
    return rows


def median_run(rows, measure=lambda r: r.get("mpps"), spec=".2f", unit=" Mpps"):
    """With --rounds N: the round with the median measure, whole (its other columns match
    it), carrying every round's figures in "rounds". The row is valid only when every
    round ran and was valid; its invalid_reasons name the rounds."""
    good = sorted((r for r in rows if measure(r)), key=measure)
    median = dict(good[(len(good) - 1) // 2] if good else rows[0])
    median["rounds"] = [{k: r.get(k) for k in ROUND_KEYS if k in r or k in ("round", "valid")} for r in rows]
    median["valid"] = bool(good) and len(good) == len(rows) and all(r.get("valid") for r in rows)
    reasons = []
    for r in rows:
        for why in r.get("invalid_reasons") or ([] if measure(r) else ["failed"]):
            reasons.append(f"round {r.get('round', '?')}: {why}" if len(rows) > 1 else why)
    median["invalid_reasons"] = reasons
    if len(rows) > 1 and good:
        spread = f"median of {len(good)}: {measure(good[0]):{spec}}..{measure(good[-1]):{spec}}{unit}"
        if len(good) < len(rows):
            spread += f", {len(rows) - len(good)} failed"
        median["notes"] = "; ".join(x for x in (spread, median.get("notes")) if x)
    return median


def target(row, name, key, threshold, valid_key="valid", at_most=False):
    """`row`'s target `name` read from `key` in each of its rounds; recorded in
    row["targets"] (JSON) and returned as (values, verdicts, overall)."""
    rounds = row.get("rounds") or [row]
    values = [r.get(key) for r in rounds]
    verdicts = [round_verdict(r.get(key), threshold, r.get(valid_key, False), at_most) for r in rounds]
    overall = overall_verdict(verdicts)
    row.setdefault("targets", []).append({"target": name, "key": key, "threshold": threshold,
                                          "at_most": at_most, "values": values, "verdicts": verdicts,
                                          "verdict": overall})
    return values, verdicts, overall


def verdict_text(values, verdicts, overall, spec, suffix="", scale=1.0):
    """'MISSED (rounds: 0.52x met, 0.49x MISSED, 0.55x met)'."""
    each = ", ".join(("-" if v is None else format(v * scale, spec) + suffix) + " " + d
                     for v, d in zip(values, verdicts))
    return f"{overall} (rounds: {each})"


def parse_testpmd_exit(text):
    """testpmd's TX-dropped (packets its io forwarding could not send: fwd_dropped) from
    the accumulated forward statistics it prints when it stops, over its whole run; None
    when the block is missing (testpmd did not stop cleanly)."""
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if "Accumulated forward statistics for all ports" in line:
            for follow in lines[n + 1:n + 4]:
                if "TX-dropped:" in follow:
                    return int(follow.split("TX-dropped:")[1].split()[0])
    return None
