// Health checks' state machine, apart from the packets that carry them: per backend,
// when the next probe is due, what its answer (or silence) means, and when the backend
// goes down or comes back up (rise/fall counts, as keepalived and HAProxy count them).
// The control thread drives it with its clock; the probes themselves (a TCP SYN from one
// of Sluice's addresses, an ICMP echo) are built and matched elsewhere.
#pragma once

#include <cstdint>
#include <vector>

namespace sluice::lb {

struct HealthSettings {
  uint32_t interval_ms = 2000;  // from one probe's start to the next's
  uint32_t timeout_ms = 1000;   // a probe unanswered this long failed (<= interval_ms)
  uint32_t rise = 2;            // consecutive good probes that bring a down backend up
  uint32_t fall = 3;            // consecutive failed probes that take an up backend down
};

enum class Transition : uint8_t { None, WentUp, WentDown };

struct HealthCounters {
  uint64_t probes = 0;    // sent
  uint64_t good = 0;      // answered as up (a SYN-ACK, an echo reply)
  uint64_t failed = 0;    // answered as down (a RST, an ICMP error)
  uint64_t timeouts = 0;  // not answered within timeout_ms
  uint64_t late = 0;      // answers to no probe in flight (after their timeout): ignored
  uint64_t went_up = 0, went_down = 0;
};

// One backend's checks. A backend starts up (it takes connections from the first moment,
// as one without checks does) and goes down after `fall` failures in a row.
class HealthCheck {
 public:
  // `first_probe_ms`: when the first probe is due (callers stagger backends over an
  // interval so that their probes do not leave in one burst).
  HealthCheck(const HealthSettings& settings, uint64_t first_probe_ms)
      : settings_(settings), next_probe_ms_(first_probe_ms) {}

  bool up() const { return up_; }
  bool in_flight() const { return in_flight_; }
  uint64_t next_probe_ms() const { return next_probe_ms_; }
  uint64_t last_transition_ms() const { return last_transition_ms_; }
  const HealthCounters& counters() const { return counters_; }

  // A probe may leave now: due, and none still waiting for its answer.
  bool due(uint64_t now_ms) const { return !in_flight_ && now_ms >= next_probe_ms_; }
  // The caller sent one (with `token`, which its answer must carry: a TCP sequence
  // number, an echo sequence).
  void sent(uint64_t now_ms, uint32_t token);
  // An answer carrying `token`: `good` (up) or not. Answers to no probe in flight, or
  // with another token, are counted late and change nothing.
  Transition answered(uint64_t now_ms, uint32_t token, bool good);
  // The probe in flight failed if it is older than timeout_ms.
  Transition expire(uint64_t now_ms);

 private:
  Transition record(uint64_t now_ms, bool good);

  HealthSettings settings_;
  uint64_t next_probe_ms_;
  uint64_t sent_ms_ = 0;
  uint64_t last_transition_ms_ = 0;
  uint32_t token_ = 0;
  uint32_t good_in_a_row_ = 0;
  uint32_t failed_in_a_row_ = 0;
  bool up_ = true;
  bool in_flight_ = false;
  HealthCounters counters_;
};

// Which backends' probes leave now, at most `budget` per call (probe traffic bounded
// however many backends are due), from a rotating start (`cursor`, kept by the caller):
// a backend left out for want of budget is first in line at the next call. Returns
// their indices into `checks`.
std::vector<uint32_t> due_probes(const std::vector<HealthCheck>& checks, uint64_t now_ms, uint32_t budget,
                                 uint32_t& cursor);

// Where in an interval a backend's first probe falls: spread by a hash of its id.
uint64_t first_probe_ms(uint64_t now_ms, uint32_t interval_ms, uint64_t id_hash);

}  // namespace sluice::lb
