// The host as sluice-hostcheck sees it: every file read goes through root + path, so a
// test can hand it a prepared /proc and /sys tree. Nothing here trusts a file's content.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sluice::hostcheck {

class Host {
 public:
  explicit Host(std::string root);

  const std::string& root() const { return root_; }
  bool is_live() const { return root_.empty(); }  // root "/": the running host
  std::string path(const std::string& absolute) const { return root_ + absolute; }

  // The file's text (at most 1 MiB), or nullopt when missing or unreadable.
  std::optional<std::string> read(const std::string& absolute) const;
  // The first line, trimmed; nullopt when missing, unreadable or empty.
  std::optional<std::string> read_line(const std::string& absolute) const;
  // A non-negative decimal integer on the first line; nullopt when missing or malformed.
  std::optional<unsigned long long> read_number(const std::string& absolute) const;
  bool exists(const std::string& absolute) const;
  // Entry names of a directory, sorted; empty when it is missing.
  std::vector<std::string> list(const std::string& absolute) const;
  // The last component of a symlink's target ("vfio-pci" for .../driver), or nullopt.
  std::optional<std::string> link_name(const std::string& absolute) const;
  // The path with every symlink resolved, still under the root; nullopt when missing.
  std::optional<std::string> real_path(const std::string& absolute) const;

  // What `ethtool FLAG IFACE` prints. Live host: runs ethtool from PATH (no shell);
  // a prepared root: the file ROOT/ethtool/IFACE/FLAG (e.g. ROOT/ethtool/eth1/-x).
  // nullopt when it cannot tell (no such file, ethtool missing or failing).
  std::optional<std::string> ethtool(const std::string& iface, const std::string& flag) const;

 private:
  std::string root_;  // "" for "/"
};

// "2-3,6" as the kernel writes CPU lists (sysfs, /proc/cmdline); nullopt when malformed.
std::optional<std::vector<unsigned>> parse_cpu_list(const std::string& text);
// "2-3,6" from a sorted list of CPUs.
std::string format_cpu_list(const std::vector<unsigned>& cpus);
std::string trim(const std::string& text);

// The value of the last `name=value` on a kernel command line, nullopt when absent.
std::optional<std::string> cmdline_value(const std::string& cmdline, const std::string& name);

}  // namespace sluice::hostcheck
