// trace: the --filter words as POST /trace parameters, and GET /trace's packets drawn
// as VPP draws its trace: a header line, a line a stage, the verdict.
#include <algorithm>
#include <sstream>

#include "format.h"

namespace sluicectl {

using nlohmann::json;

namespace {

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

const json& steps_of(const json& packet) {
  static const json empty = json::array();
  if (!packet.is_object()) return empty;
  auto it = packet.find("steps");
  return it != packet.end() && it->is_array() ? *it : empty;
}

std::string optional_field(const json& object, const char* key) {
  const std::string v = field(object, key);
  return v == "-" ? "" : v;
}

}  // namespace

bool parse_trace_filter(const std::string& text, Query& out, std::string& error) {
  const std::vector<std::string> w = words(text);
  static const char* keys[] = {"proto", "src", "dst", "host", "sport", "dport", "l4port"};
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == "tcp" || w[i] == "udp" || w[i] == "icmp" || w[i] == "icmpv6" || w[i] == "icmp6") {
      out["proto"] = w[i];
      continue;
    }
    std::string key = w[i] == "port" ? "l4port" : w[i] == "protocol" ? "proto" : w[i];
    if (std::find(std::begin(keys), std::end(keys), key) == std::end(keys)) {
      error = "--filter: unknown word '" + w[i] +
              "' (proto P, src A, dst A, host A, sport N, dport N, port N; tcp, udp, icmp, icmpv6)";
      return false;
    }
    if (i + 1 >= w.size()) {
      error = "--filter: '" + w[i] + "' needs a value";
      return false;
    }
    if (out.count(key)) {
      error = "--filter: '" + w[i] + "' given twice";
      return false;
    }
    out[key] = w[++i];
  }
  return true;
}

std::string render_trace_packet(const json& packet) {
  std::ostringstream out;
  out << "#" << field(packet, "seq") << " lcore " << field(packet, "lcore") << " port " << field(packet, "port");
  if (packet.is_object() && packet.value("handed_over", false)) out << " (handed over by another worker)";
  out << ": " << field(packet, "headers") << " (" << field(packet, "ethernet") << ")\n";
  const json& steps = steps_of(packet);
  size_t stage_width = 0, outcome_width = 0;
  for (const auto& s : steps) {
    stage_width = std::max(stage_width, field(s, "stage").size());
    outcome_width = std::max(outcome_width, field(s, "outcome").size());
  }
  for (const auto& s : steps) {
    const std::string stage = field(s, "stage"), outcome = field(s, "outcome");
    std::string line = "  " + stage + std::string(stage_width - stage.size(), ' ') + "  " + outcome +
                       std::string(outcome_width - outcome.size(), ' ');
    for (const std::string& part :
         {optional_field(s, "reason"), optional_field(s, "detail"),
          optional_field(s, "headers").empty() ? std::string() : "-> " + optional_field(s, "headers")})
      if (!part.empty()) line += "  " + part;
    if (s.is_object() && s.contains("cycles")) line += "  " + field(s, "cycles") + " cycles";
    out << line << "\n";
  }
  const std::string outcome = field(packet, "outcome"), where = field(packet, "stage");
  if (outcome == "sent") out << "=> sent on " << field(packet, "egress") << "\n";
  else if (outcome == "dropped")
    out << "=> dropped at " << where << ": " << field(packet, "reason") << " (" << field(packet, "reason_description")
        << ")\n";
  else if (outcome == "left") out << "=> handed on at " << where << "\n";
  else out << "=> " << outcome << (where == "-" ? "" : " at " + where) << "\n";
  return out.str();
}

std::string render_trace(const json& trace) {
  std::string out;
  const json empty = json::array();
  const json& packets = trace.is_object() && trace.contains("packets") && trace["packets"].is_array()
                            ? trace["packets"]
                            : empty;
  for (const auto& p : packets) out += render_trace_packet(p) + "\n";
  out += "trace " + field(trace, "id") + " (" + field(trace, "filter") + "): " + field(trace, "captured") + " of " +
         field(trace, "wanted") + " packets caught; " + field(trace, "examined") + " examined, " +
         field(trace, "matched") + " matched the filter\n";
  return out;
}

}  // namespace sluicectl
