// stats --watch: rates per second from two /stats answers.
#include <algorithm>
#include <cmath>

#include "format.h"

namespace sluicectl {

using nlohmann::json;

namespace {

const json& rows(const json& stats, const char* key) {
  static const json empty = json::array();
  if (!stats.is_object()) return empty;
  auto it = stats.find(key);
  return it != stats.end() && it->is_array() ? *it : empty;
}

// The row of `list` whose `key_fields` match `row`'s, or null.
const json* same_row(const json& list, const json& row, std::initializer_list<const char*> key_fields) {
  for (const auto& other : list) {
    bool same = true;
    for (const char* k : key_fields) same = same && field(other, k) == field(row, k);
    if (same) return &other;
  }
  return nullptr;
}

// (after - before) / seconds; 0 for a counter that went backwards or is missing.
double per_second(const json& before, const json& after, const char* key, double seconds) {
  const double a = number(after, key, -1), b = number(before, key, -1);
  if (a < 0 || b < 0 || a < b || seconds <= 0) return 0;
  return (a - b) / seconds;
}

}  // namespace

Rates compute_rates(const json& before, const json& after, double wall_seconds) {
  Rates r;
  const double up_before = number(before, "uptime_seconds", -1), up_after = number(after, "uptime_seconds", -1);
  // The server's clock says when each answer was made; ours includes the HTTP round trips.
  r.seconds = up_before >= 0 && up_after > up_before ? up_after - up_before : wall_seconds;
  const double s = r.seconds;
  for (const auto& p : rows(after, "ports")) {
    Rate rate;
    rate.port = field(p, "name");
    if (const json* q = same_row(rows(before, "ports"), p, {"name"})) {
      rate.rx_pps = per_second(*q, p, "rx_packets", s);
      rate.tx_pps = per_second(*q, p, "tx_packets", s);
      rate.rx_bps = per_second(*q, p, "rx_bytes", s) * 8;
      rate.tx_bps = per_second(*q, p, "tx_bytes", s) * 8;
      rate.missed_ps = per_second(*q, p, "rx_missed", s);
      rate.errors_ps = per_second(*q, p, "rx_errors", s) + per_second(*q, p, "tx_errors", s);
    }
    r.ports.push_back(rate);
  }
  for (const auto& st : rows(after, "stages")) {
    Rate rate;
    rate.port = field(st, "port");
    rate.stage = field(st, "stage");
    if (const json* q = same_row(rows(before, "stages"), st, {"port", "stage"})) {
      rate.in_pps = per_second(*q, st, "packets_in", s);
      rate.out_pps = per_second(*q, st, "packets_out", s);
      rate.drops_ps = per_second(*q, st, "drops_total", s);
    }
    for (auto& p : r.ports)
      if (p.port == rate.port) p.drops_ps += rate.drops_ps;
    r.stages.push_back(rate);
  }
  r.drops_ps = per_second(before, after, "drops_total", s);
  const json empty = json::object();
  const json& drops_after = after.is_object() && after.contains("drops") ? after["drops"] : empty;
  const json& drops_before = before.is_object() && before.contains("drops") ? before["drops"] : empty;
  if (drops_after.is_object())
    for (const auto& [name, value] : drops_after.items()) {
      (void)value;
      const double rate = per_second(drops_before, drops_after, name.c_str(), s);
      if (rate > 0) r.drop_reasons.emplace_back(name, rate);
    }
  std::stable_sort(r.drop_reasons.begin(), r.drop_reasons.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return r;
}

std::string render_rates(const Rates& rates, const json& after) {
  Table ports({"PORT", ">RX-PPS", ">TX-PPS", ">RX-BIT/S", ">TX-BIT/S", ">MISSED/S", ">ERRORS/S", ">DROPS/S"});
  for (const auto& p : rates.ports)
    ports.add({p.port, human_rate(p.rx_pps), human_rate(p.tx_pps), human_rate(p.rx_bps), human_rate(p.tx_bps),
               human_rate(p.missed_ps), human_rate(p.errors_ps), human_rate(p.drops_ps)});
  Table stages({"PORT", "STAGE", ">IN-PPS", ">OUT-PPS", ">DROPS/S"});
  for (const auto& st : rates.stages)
    stages.add({st.port, st.stage, human_rate(st.in_pps), human_rate(st.out_pps), human_rate(st.drops_ps)});
  std::string reasons;
  for (const auto& [name, rate] : rates.drop_reasons) reasons += (reasons.empty() ? " (" : ", ") + name + " " + human_rate(rate);
  if (!reasons.empty()) reasons += ")";
  char head[160];
  std::snprintf(head, sizeof(head), "rates over the last %.1f s, uptime %s\n\n", rates.seconds,
                human_duration(number(after, "uptime_seconds", -1)).c_str());
  return head + ports.str() + "\n" + stages.str() + "\ndrops/s: " + human_rate(rates.drops_ps) + reasons + "\n";
}

json rates_json(const Rates& rates) {
  json ports = json::array(), stages = json::array(), reasons = json::object();
  for (const auto& p : rates.ports)
    ports.push_back({{"name", p.port},
                     {"rx_pps", p.rx_pps},
                     {"tx_pps", p.tx_pps},
                     {"rx_bps", p.rx_bps},
                     {"tx_bps", p.tx_bps},
                     {"rx_missed_ps", p.missed_ps},
                     {"errors_ps", p.errors_ps},
                     {"drops_ps", p.drops_ps}});
  for (const auto& st : rates.stages)
    stages.push_back({{"port", st.port},
                      {"stage", st.stage},
                      {"in_pps", st.in_pps},
                      {"out_pps", st.out_pps},
                      {"drops_ps", st.drops_ps}});
  for (const auto& [name, rate] : rates.drop_reasons) reasons[name] = rate;
  return {{"seconds", rates.seconds}, {"ports", ports}, {"stages", stages}, {"drops_ps", rates.drops_ps},
          {"drop_reasons_ps", reasons}};
}

}  // namespace sluicectl
