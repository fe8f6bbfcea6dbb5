#include "hostcheck/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <regex>
#include <sstream>

#include "config/lcores.h"

extern char** environ;

namespace sluice::hostcheck {

namespace {
constexpr size_t kMaxFileBytes = 1u << 20;
constexpr unsigned kMaxCpu = 8191;
}  // namespace

Host::Host(std::string root) : root_(std::move(root)) {
  while (!root_.empty() && root_.back() == '/') root_.pop_back();
}

std::optional<std::string> Host::read(const std::string& absolute) const {
  std::ifstream in(path(absolute), std::ios::binary);
  if (!in) return std::nullopt;
  std::string text;
  char buf[4096];
  while (text.size() < kMaxFileBytes) {
    in.read(buf, sizeof(buf));
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (!in) break;
  }
  if (in.bad()) return std::nullopt;  // a directory, or an I/O error
  return text;
}

std::optional<std::string> Host::read_line(const std::string& absolute) const {
  auto text = read(absolute);
  if (!text) return std::nullopt;
  std::string line = trim(text->substr(0, text->find('\n')));
  if (line.empty()) return std::nullopt;
  return line;
}

std::optional<unsigned long long> Host::read_number(const std::string& absolute) const {
  auto line = read_line(absolute);
  if (!line) return std::nullopt;
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(line->data(), line->data() + line->size(), value);
  if (ec != std::errc() || end != line->data() + line->size()) return std::nullopt;
  return value;
}

bool Host::exists(const std::string& absolute) const {
  struct stat st {};
  return ::stat(path(absolute).c_str(), &st) == 0;
}

std::vector<std::string> Host::list(const std::string& absolute) const {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path(absolute).c_str());
  if (!dir) return names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<std::string> Host::link_name(const std::string& absolute) const {
  char target[4096];
  ssize_t n = ::readlink(path(absolute).c_str(), target, sizeof(target) - 1);
  if (n <= 0) return std::nullopt;
  std::string text(target, static_cast<size_t>(n));
  while (!text.empty() && text.back() == '/') text.pop_back();
  auto slash = text.rfind('/');
  text = slash == std::string::npos ? text : text.substr(slash + 1);
  if (text.empty()) return std::nullopt;
  return text;
}

std::optional<std::string> Host::real_path(const std::string& absolute) const {
  char resolved[PATH_MAX];
  if (!::realpath(path(absolute).c_str(), resolved)) return std::nullopt;
  return std::string(resolved);
}

std::optional<std::string> Host::ethtool(const std::string& iface, const std::string& flag) const {
  // Interface names are at most 15 characters and never contain '/'; nothing else reaches a path or argv.
  static const std::regex safe_iface(R"(^[A-Za-z0-9_.:@-]{1,15}$)");
  static const std::regex safe_flag(R"(^-[a-zA-Z]$)");
  if (!std::regex_match(iface, safe_iface) || !std::regex_match(flag, safe_flag)) return std::nullopt;
  if (!is_live()) return read("/ethtool/" + iface + "/" + flag);

  int fds[2];
  if (::pipe(fds) != 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string program = "ethtool";
  std::vector<char*> argv = {program.data(), const_cast<char*>(flag.c_str()), const_cast<char*>(iface.c_str()), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, "ethtool", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0 && out.size() < kMaxFileBytes) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

std::optional<std::vector<unsigned>> parse_cpu_list(const std::string& text) {
  std::string spec = trim(text);
  if (spec.empty()) return std::vector<unsigned>{};  // sysfs writes an empty line for "none"
  return config::parse_lcore_list(spec, kMaxCpu);
}

std::string format_cpu_list(const std::vector<unsigned>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) {
      out += '-';
      out += std::to_string(cpus[j]);
    }
    i = j + 1;
  }
  return out;
}

std::optional<std::string> cmdline_value(const std::string& cmdline, const std::string& name) {
  std::istringstream words(cmdline);
  std::string word;
  std::optional<std::string> value;
  while (words >> word) {
    if (word == "--") break;  // what follows goes to init, not the kernel
    if (word.rfind(name + "=", 0) == 0) value = word.substr(name.size() + 1);
  }
  return value;
}

}  // namespace sluice::hostcheck
