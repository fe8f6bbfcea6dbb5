// lib/config: every bad config yields exactly the lines an operator reads, and a good
// one comes back with defaults filled, "auto" workers resolved, and round-trips.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "config/config.h"
#include "config_support.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;

// Short-hands so each case shows only what it breaks.
//   $EAL  "eal": {"lcores": "0-1"}
//   $W    port west (net_ring0), parse then xconnect to east
//   $E    port east (net_ring1), parse then xconnect to west
const fixtures::ConfigText kText({
      {"$EAL", R"("eal": {"lcores": "0-1"})"},
      {"$W", R"({"name": "west", "device": "net_ring0", "pipeline": ["parse", {"stage": "xconnect", "peer": "east"}]})"},
      {"$E", R"({"name": "east", "device": "net_ring1", "pipeline": ["parse", {"stage": "xconnect", "peer": "west"}]})"},
});

std::string expand(const std::string& text) { return kText.expand(text); }

Config parse_ok(const std::string& text) { return kText.parse_ok(text); }

using fixtures::BadConfig;

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, ReportsExactlyTheseErrors) {
  fixtures::expect_exact_errors(kText, GetParam());
}

const BadConfig kBadConfigs[] = {
    // The document itself.
    {"NotAnObject", "[]", {"config: must be a JSON object, got array"}},
    {"EmptyObject", "{}", {"config: missing required key 'eal'", "config: missing required key 'ports'"}},
    {"UnknownTopLevelKey", R"({$EAL, "ports": [$W, $E], "wrokers": "auto"})",
     {"wrokers: unknown key (expected one of: eal, ports, workers, burst_size, mempool, control, logging, routes, "
      "neighbours, icmp, neighbour, conntrack, firewall, nat, polling, services)"}},

    // polling
    {"PollingIdleUnknown", R"({$EAL, "ports": [$W, $E], "polling": {"idle": "nap"}})",
     {"polling.idle: must be one of busy, sleep, got 'nap'"}},
    {"PollingMaxSleepTooLong", R"({$EAL, "ports": [$W, $E], "polling": {"idle": "sleep", "max_sleep_us": 20000}})",
     {"polling.max_sleep_us: must be 1..10000, got 20000"}},
    {"PollingUnknownKey", R"({$EAL, "ports": [$W, $E], "polling": {"sleep_us": 5}})",
     {"polling.sleep_us: unknown key (expected one of: idle, sleep_after_polls, max_sleep_us)"}},

    // burst_size
    {"BurstSizeZero", R"({$EAL, "ports": [$W, $E], "burst_size": 0})", {"burst_size: must be 1..64, got 0"}},
    {"BurstSizeTooBig", R"({$EAL, "ports": [$W, $E], "burst_size": 65})", {"burst_size: must be 1..64, got 65"}},
    {"BurstSizeNegative", R"({$EAL, "ports": [$W, $E], "burst_size": -1})", {"burst_size: must be 1..64, got -1"}},
    {"BurstSizeHugeUnsigned", R"({$EAL, "ports": [$W, $E], "burst_size": 18446744073709551615})",
     {"burst_size: must be 1..64, got 18446744073709551615"}},
    {"BurstSizeString", R"({$EAL, "ports": [$W, $E], "burst_size": "32"})",
     {"burst_size: must be an integer, got string"}},
    {"BurstSizeFloat", R"({$EAL, "ports": [$W, $E], "burst_size": 1.5})",
     {"burst_size: must be an integer, got number"}},

    // eal
    {"EalNotObject", R"({"eal": "0-1", "ports": [$W, $E]})", {"eal: must be an object, got string"}},
    {"EalMissingLcores", R"({"eal": {}, "ports": [$W, $E]})", {"eal: missing required key 'lcores'"}},
    {"EalUnknownKey", R"({"eal": {"lcore": "0-1"}, "ports": [$W, $E]})",
     {"eal.lcore: unknown key (expected one of: lcores, main_lcore, hugepages, memory_mb, file_prefix, extra_args)",
      "eal: missing required key 'lcores'"}},
    {"LcoresMalformed", R"({"eal": {"lcores": "0-"}, "ports": [$W, $E]})",
     {R"(eal.lcores: malformed lcore list '0-' (expected like "0-3,6"))"}},
    {"LcoresEmptyString", R"({"eal": {"lcores": ""}, "ports": [$W, $E]})",
     {R"(eal.lcores: malformed lcore list '' (expected like "0-3,6"))"}},
    {"LcoresReversedRange", R"({"eal": {"lcores": "3-1"}, "ports": [$W, $E]})",
     {R"(eal.lcores: malformed lcore list '3-1' (expected like "0-3,6"))"}},
    {"LcoresNumber", R"({"eal": {"lcores": 5}, "ports": [$W, $E]})",
     {R"(eal.lcores: must be a list like "0-3,6" or an array of lcore ids, got 5)"}},
    {"LcoresArrayWithNegative", R"({"eal": {"lcores": [0, -1]}, "ports": [$W, $E]})",
     {R"(eal.lcores: must be a list like "0-3,6" or an array of lcore ids, got [0,-1])"}},
    {"LcoresSingleWithAutoWorkers", R"({"eal": {"lcores": "0"}, "ports": [$W, $E]})",
     {"eal.lcores: need at least two lcores (the main lcore runs the control thread), got '0'"}},
    {"MainLcoreNotInLcores", R"({"eal": {"lcores": "0-1", "main_lcore": 3}, "ports": [$W, $E]})",
     {"eal.main_lcore: 3 is not in eal.lcores '0-1'"}},
    {"MainLcoreString", R"({"eal": {"lcores": "0-1", "main_lcore": "0"}, "ports": [$W, $E]})",
     {"eal.main_lcore: must be an integer, got string"}},
    {"HugepagesNotBool", R"({"eal": {"lcores": "0-1", "hugepages": "yes"}, "ports": [$W, $E]})",
     {"eal.hugepages: must be true or false, got string"}},
    {"MemoryTooSmall", R"({"eal": {"lcores": "0-1", "memory_mb": 32}, "ports": [$W, $E]})",
     {"eal.memory_mb: must be 64..1048576, got 32"}},
    {"FilePrefixWithSpace", R"({"eal": {"lcores": "0-1", "file_prefix": "a b"}, "ports": [$W, $E]})",
     {"eal.file_prefix: must be 1..64 characters of A-Z a-z 0-9 _ . -, got 'a b'"}},
    {"FilePrefixEscapes", R"({"eal": {"lcores": "0-1", "file_prefix": "../x/y"}, "ports": [$W, $E]})",
     {"eal.file_prefix: must be 1..64 characters of A-Z a-z 0-9 _ . -, got '../x/y'"}},
    {"ExtraArgsString", R"({"eal": {"lcores": "0-1", "extra_args": "--foo"}, "ports": [$W, $E]})",
     {R"(eal.extra_args: must be an array of strings, got "--foo")"}},
    {"ExtraArgsNumbers", R"({"eal": {"lcores": "0-1", "extra_args": ["-n", 4]}, "ports": [$W, $E]})",
     {R"(eal.extra_args: must be an array of strings, got ["-n",4])"}},

    // ports: shape
    {"PortsEmpty", R"({$EAL, "ports": []})", {"ports: must be a non-empty array of ports, got []"}},
    {"PortsObject", R"({$EAL, "ports": {}})", {"ports: must be a non-empty array of ports, got {}"}},
    {"PortNotObject", R"({$EAL, "ports": [5]})", {"ports[0]: must be an object, got integer"}},
    {"PortMissingNameAndDevice", R"({$EAL, "ports": [{"pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0]: missing required key 'name'", "ports[0]: missing required key 'device'"}},
    {"PortMissingPipeline", R"({$EAL, "ports": [{"name": "west", "device": "net_ring0"}, $E]})",
     {"ports[0]: missing required key 'pipeline'"}},
    {"PortUnknownKey",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "queues": 2, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].queues: unknown key (expected one of: name, device, devargs, rx_queues, tx_queues, rx_descriptors, "
      "tx_descriptors, mtu, mac, promiscuous, rss, ipv4, ipv6, pipeline, zone, conntrack_zone, steering)"}},

    // ports: values
    {"RxQueuesZero",
     R"({$EAL, "ports": [$W, {"name": "east", "device": "net_ring1", "rx_queues": 0, "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})",
     {"ports[1].rx_queues: must be 1..64, got 0"}},
    {"RxQueuesTooMany",
     R"({$EAL, "ports": [$W, {"name": "east", "device": "net_ring1", "rx_queues": 65, "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})",
     {"ports[1].rx_queues: must be 1..64, got 65"}},
    {"TxQueuesZero",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "tx_queues": 0, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].tx_queues: must be 1..64, got 0"}},
    {"RxDescriptorsTooFew",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "rx_descriptors": 32, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].rx_descriptors: must be 64..16384, got 32"}},
    {"TxDescriptorsTooMany",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "tx_descriptors": 32768, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].tx_descriptors: must be 64..16384, got 32768"}},
    {"MtuTooSmall",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mtu": 67, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mtu: must be 68..9600, got 67"}},
    {"MtuTooBig",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mtu": 9601, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mtu: must be 68..9600, got 9601"}},
    {"MtuBeyondDataRoom",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mtu": 9000, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mtu: 9000 needs mempool.data_room >= 9154, got 2176"}},
    {"NameStartsWithDigit",
     R"({$EAL, "ports": [{"name": "1west", "device": "net_ring0", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].name: must start with a letter and have 1..32 of A-Z a-z 0-9 _ -, got '1west'"}},
    {"NameNotString",
     R"({$EAL, "ports": [{"name": 5, "device": "net_ring0", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].name: must be a string, got integer"}},
    {"DeviceNotVdevOrPci",
     R"({$EAL, "ports": [{"name": "west", "device": "eth0", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].device: must be a vdev name like net_af_packet0 or a PCI address like 0000:01:00.0, got 'eth0'"}},
    {"DevargsWithSpace",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "devargs": "iface=a b", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].devargs: must not contain white space, got 'iface=a b'"}},
    {"MacTooShort",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mac": "02:00:00:00:00", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mac: must look like 02:00:00:00:00:01, got '02:00:00:00:00'"}},
    {"MacNotHex",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mac": "02:00:00:00:00:0g", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mac: must look like 02:00:00:00:00:01, got '02:00:00:00:00:0g'"}},
    {"MacWithSign",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mac": "02:00:00:00:00:+1", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mac: must look like 02:00:00:00:00:01, got '02:00:00:00:00:+1'"}},
    {"MacWithSpace",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mac": "02:00:00:00:00: 1", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mac: must look like 02:00:00:00:00:01, got '02:00:00:00:00: 1'"}},
    {"MacDashes",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mac": "02-00-00-00-00-01", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mac: must look like 02:00:00:00:00:01, got '02-00-00-00-00-01'"}},
    {"MacMulticast",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "mac": "01:00:5e:00:00:01", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].mac: must be a unicast address, got '01:00:5e:00:00:01'"}},
    {"PromiscuousNotBool",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "promiscuous": 1, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].promiscuous: must be true or false, got integer"}},
    {"RssUnknownMode",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "rss": "on", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].rss: must be one of symmetric, off, got 'on'"}},
    {"TooManyPorts",
     R"({$EAL, "ports": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33]})",
     {"ports: at most 32 ports, got 33"}},

    // ports: pipelines
    {"PipelineEmpty", R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": []}, $E]})",
     {"ports[0].pipeline: must be a non-empty array of stages, got []"}},
    {"PipelineWithoutOutput", R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": ["parse"]}, $E]})",
     {"ports[0].pipeline: must end with an output stage (xconnect or route), got 'parse'"}},
    {"PipelineUnknownStage", R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": ["lbx"]}, $E]})",
     {"ports[0].pipeline[0]: unknown stage 'lbx' (known: parse, conntrack, lb, nat, xconnect, route)"}},
    {"PipelineStageNotStringOrObject",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": [5, {"stage": "xconnect", "peer": "east"}]}, $E]})",
     {R"(ports[0].pipeline[0]: must be a stage name or an object {"stage": ...}, got integer)"}},
    {"PipelineStageMissingName",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": [{"peer": "east"}, {"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].pipeline[0]: missing required key 'stage'"}},
    {"PipelineStageUnknownKey",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": [{"stage": "xconnect", "peer": "east", "x": 1}]}, $E]})",
     {"ports[0].pipeline[0].x: unknown key (expected one of: stage, peer)"}},
    {"XconnectWithoutPeer",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": [{"stage": "xconnect"}]}, $E]})",
     {R"(ports[0].pipeline[0]: xconnect needs "peer": the name of the port to send to)"}},
    {"XconnectPeerNotString",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": [{"stage": "xconnect", "peer": 1}]}, $E]})",
     {"ports[0].pipeline[0].peer: must be a string, got integer",
      R"(ports[0].pipeline[0]: xconnect needs "peer": the name of the port to send to)"}},
    {"PeerOnParse",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": [{"stage": "parse", "peer": "east"}, {"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].pipeline[0].peer: only the xconnect stage takes a peer"}},
    {"OutputNotLast",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": [{"stage": "xconnect", "peer": "east"}, "parse"]}, $E]})",
     {"ports[0].pipeline[0]: xconnect sends packets out and must be the last stage",
      "ports[0].pipeline: must end with an output stage (xconnect or route), got 'parse'"}},
    {"StageTwice",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": ["parse", "parse", {"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].pipeline[1]: stage 'parse' appears twice"}},

    // ports: cross references
    {"XconnectPeerUnknown",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": ["parse", {"stage": "xconnect", "peer": "north"}]}, $E]})",
     {"ports[0].pipeline[1].peer: unknown port 'north'"}},
    {"XconnectPeerSelf",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "pipeline": ["parse", {"stage": "xconnect", "peer": "west"}]}, $E]})",
     {"ports[0].pipeline[1].peer: must name another port, got its own name"}},
    {"DuplicatePortName",
     R"({$EAL, "ports": [$W, $E, {"name": "west", "device": "net_ring2", "pipeline": [{"stage": "xconnect", "peer": "east"}]}]})",
     {"ports[2].name: duplicate port name 'west' (also ports[0])"}},
    {"DuplicateDevice",
     R"({$EAL, "ports": [$W, {"name": "east", "device": "net_ring0", "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})",
     {"ports[1].device: device 'net_ring0' is already used by ports[0]"}},
    {"DuplicatePciDeviceShortForm",
     R"({$EAL, "ports": [{"name": "west", "device": "0000:01:00.0", "pipeline": [{"stage": "xconnect", "peer": "east"}]},
                         {"name": "east", "device": "01:00.0", "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})",
     {"ports[1].device: device '0000:01:00.0' is already used by ports[0]"}},

    // mempool
    {"MempoolMbufsTooFew", R"({$EAL, "ports": [$W, $E], "mempool": {"mbufs": 100}})",
     {"mempool.mbufs: must be 0 (sized automatically) or 1024..16777216, got 100"}},
    {"MempoolCacheTooBig", R"({$EAL, "ports": [$W, $E], "mempool": {"cache_size": 1000}})",
     {"mempool.cache_size: must be 0..512, got 1000"}},
    {"MempoolDataRoomTooSmall", R"({$EAL, "ports": [$W, $E], "mempool": {"data_room": 512}})",
     {"mempool.data_room: must be 1024..65535, got 512"}},
    {"MempoolUnknownKey", R"({$EAL, "ports": [$W, $E], "mempool": {"size": 4096}})",
     {"mempool.size: unknown key (expected one of: mbufs, cache_size, data_room)"}},
    {"MempoolNotObject", R"({$EAL, "ports": [$W, $E], "mempool": 4096})", {"mempool: must be an object, got integer"}},

    // control, logging
    {"HttpAddressHostname", R"({$EAL, "ports": [$W, $E], "control": {"http": {"address": "localhost"}}})",
     {"control.http.address: must be an IPv4 or IPv6 address, got 'localhost'"}},
    {"HttpPortZero", R"({$EAL, "ports": [$W, $E], "control": {"http": {"port": 0}}})",
     {"control.http.port: must be 1..65535, got 0"}},
    {"HttpPortTooBig", R"({$EAL, "ports": [$W, $E], "control": {"http": {"port": 65536}}})",
     {"control.http.port: must be 1..65535, got 65536"}},
    {"HttpNotObject", R"({$EAL, "ports": [$W, $E], "control": {"http": "on"}})",
     {"control.http: must be an object, got string"}},
    {"HttpUnknownKey", R"({$EAL, "ports": [$W, $E], "control": {"http": {"listen": "0.0.0.0"}}})",
     {"control.http.listen: unknown key (expected one of: enabled, address, port)"}},
    {"TelemetryNotBool", R"({$EAL, "ports": [$W, $E], "control": {"telemetry": "yes"}})",
     {"control.telemetry: must be true or false, got string"}},
    {"LogLevelUnknown", R"({$EAL, "ports": [$W, $E], "logging": {"level": "verbose"}})",
     {"logging.level: must be one of trace, debug, info, warn, error, critical, off, got 'verbose'"}},
    {"LogLevelNotString", R"({$EAL, "ports": [$W, $E], "logging": {"level": 3}})",
     {"logging.level: must be a string, got integer"}},

    // workers: shape
    {"WorkersUnknownWord", R"({$EAL, "ports": [$W, $E], "workers": "manual"})",
     {R"(workers: must be "auto" or an array of workers, got "manual")"}},
    {"WorkersEmptyArray", R"({$EAL, "ports": [$W, $E], "workers": []})",
     {R"(workers: must be "auto" or a non-empty array of workers, got [])"}},
    {"WorkerNotObject", R"({$EAL, "ports": [$W, $E], "workers": [5]})",
     {R"(workers[0]: must be an object {"lcore": N, "rx": [...]}, got integer)"}},
    {"WorkerMissingKeys", R"({$EAL, "ports": [$W, $E], "workers": [{}]})",
     {"workers[0]: missing required key 'lcore'", "workers[0]: missing required key 'rx'"}},
    {"WorkerUnknownKey",
     R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "core": 1, "rx": [{"port": "west"}, {"port": "east"}]}]})",
     {"workers[0].core: unknown key (expected one of: lcore, rx)"}},
    {"WorkerRxEmpty", R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": []}]})",
     {R"(workers[0].rx: must be a non-empty array of {"port": NAME, "queue": N}, got [])"}},
    {"WorkerRxNotObject", R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": ["west"]}]})",
     {R"(workers[0].rx[0]: must be an object {"port": NAME, "queue": N}, got string)"}},
    {"WorkerRxMissingPort", R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": [{"queue": 0}]}]})",
     {"workers[0].rx[0]: missing required key 'port'"}},
    {"WorkerRxQueueTooBig",
     R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": [{"port": "west", "queue": 64}, {"port": "east"}]}]})",
     {"workers[0].rx[0].queue: must be 0..63, got 64"}},

    // workers: cross references and lcores
    {"WorkerOnMainLcore",
     R"({"eal": {"lcores": "0-2"}, "ports": [$W, $E],
         "workers": [{"lcore": 0, "rx": [{"port": "west"}]}, {"lcore": 2, "rx": [{"port": "east"}]}]})",
     {"workers[0].lcore: 0 is the main lcore, which runs the control thread"}},
    {"WorkerLcoreNotInEal",
     R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 5, "rx": [{"port": "west"}, {"port": "east"}]}]})",
     {"workers[0].lcore: 5 is not in eal.lcores '0-1'"}},
    {"WorkerLcoreTwice",
     R"({"eal": {"lcores": "0-2"}, "ports": [$W, $E],
         "workers": [{"lcore": 1, "rx": [{"port": "west"}]}, {"lcore": 1, "rx": [{"port": "east"}]}]})",
     {"workers[1].lcore: lcore 1 is already used by workers[0]"}},
    {"QueuePolledTwice",
     R"({"eal": {"lcores": "0-2"}, "ports": [$W, $E],
         "workers": [{"lcore": 1, "rx": [{"port": "west"}, {"port": "east"}]}, {"lcore": 2, "rx": [{"port": "west", "queue": 0}]}]})",
     {"workers[1].rx[0]: queue 0 of port 'west' is already polled by workers[0]"}},
    {"QueuePolledTwiceBySameWorker",
     R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": [{"port": "west"}, {"port": "east"}, {"port": "west"}]}]})",
     {"workers[0].rx[2]: queue 0 of port 'west' is already polled by workers[0]"}},
    {"WorkerRxUnknownPort",
     R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": [{"port": "west"}, {"port": "east"}, {"port": "north"}]}]})",
     {"workers[0].rx[2].port: unknown port 'north'"}},
    {"WorkerRxQueueBeyondPort",
     R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": [{"port": "west", "queue": 1}, {"port": "east"}]}]})",
     {"workers[0].rx[0].queue: port 'west' has 1 rx queue(s), got queue 1",
      "ports[0].rx_queues: queue 0 is polled by no worker"}},
    {"QueuePolledByNoWorker", R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": [{"port": "west"}]}]})",
     {"ports[1].rx_queues: queue 0 is polled by no worker"}},
    {"TxQueuesFewerThanWorkers",
     R"({"eal": {"lcores": "0-2"}, "ports": [{"name": "west", "device": "net_ring0", "tx_queues": 1, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})",
     {"ports[0].tx_queues: must be at least the number of workers (2), got 1"}},

    // Duplicate keys: JSON parsers keep the last silently; a config must not.
    {"DuplicateTopLevelKey", R"({$EAL, "ports": [$W, $E], "burst_size": 1, "burst_size": 64})",
     {"burst_size: duplicate key (each key may appear once)"}},
    {"DuplicateKeyInAPort",
     R"({$EAL, "ports": [$W, {"name": "east", "device": "net_ring1", "mtu": 1500, "mtu": 1500, "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})",
     {"ports[1].mtu: duplicate key (each key may appear once)"}},
    {"DuplicateKeyDeepInsideArrays",
     R"({$EAL, "ports": [$W, $E], "workers": [{"lcore": 1, "rx": [{"port": "west"}, {"port": "east", "queue": 0, "queue": 0}]}]})",
     {"workers[0].rx[1].queue: duplicate key (each key may appear once)"}},
    {"DuplicateKeyBesideOtherErrors", R"({"eal": {"lcores": "0-1", "lcores": "0-1"}, "ports": [$W, $E], "burst_size": 0})",
     {"eal.lcores: duplicate key (each key may appear once)", "burst_size: must be 1..64, got 0"}},
    {"DuplicateKeyThenMalformed", R"({"burst_size": 1, "burst_size": 2,})",
     {"test.json:1:35: malformed JSON: syntax error while parsing object key - unexpected '}'; expected string literal"}},

    // Several problems at once: all of them, in document order.
    {"SeveralProblems",
     R"({$EAL, "ports": [{"name": "west", "device": "net_ring0", "rx_queues": 0, "mtu": 10, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E],
         "burst_size": 0, "logging": {"level": "loud"}})",
     {"ports[0].rx_queues: must be 1..64, got 0", "ports[0].mtu: must be 68..9600, got 10",
      "burst_size: must be 1..64, got 0",
      "logging.level: must be one of trace, debug, info, warn, error, critical, off, got 'loud'"}},

    // Malformed JSON: FILE:LINE:COL, column of the character the parser stopped at.
    {"JsonTrailingComma", R"({"eal": {"lcores": "0-1",}})",
     {"test.json:1:26: malformed JSON: syntax error while parsing object key - unexpected '}'; expected string literal"}},
    {"JsonBadNumberOnLine3", "{\n  \"eal\": {\n    \"lcores\": 0-1\n  }\n}",
     {"test.json:3:17: malformed JSON: syntax error while parsing object - unexpected number literal; expected '}'"}},
    {"JsonEmpty", "",
     {"test.json:1:1: malformed JSON: syntax error while parsing value - unexpected end of input; expected '[', '{', "
      "or a literal"}},
    {"JsonNewlineInString", "{\"eal\": \"x\ny\"}",
     {"test.json:1:11: malformed JSON: syntax error while parsing value - invalid string: control character U+000A "
      "(LF) must be escaped to \\u000A or \\n; last read: '\"x<U+000A>'"}},
    {"JsonBadLiteral", "{\n\"eal\": tru}",
     {"test.json:2:11: malformed JSON: syntax error while parsing value - invalid literal; last read: '\"eal\": tru}'"}},
    {"JsonNumberOverflow", "{\n  \"burst_size\": 1e999}",
     {"test.json:2:17: malformed JSON: number overflow parsing '1e999'"}},
};

INSTANTIATE_TEST_SUITE_P(Config, BadConfigTest, ::testing::ValuesIn(kBadConfigs),
                         [](const ::testing::TestParamInfo<BadConfig>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(ConfigTest, MinimalConfigGetsEveryDefault) {
  Config c = parse_ok(R"({$EAL, "ports": [$W, $E]})");
  EXPECT_EQ(c.eal.lcores, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(c.eal.lcores_spec, "0-1");
  EXPECT_EQ(c.eal.main_lcore, 0u);
  EXPECT_TRUE(c.eal.hugepages);
  EXPECT_EQ(c.eal.memory_mb, 512u);
  EXPECT_EQ(c.eal.file_prefix, "sluice");
  EXPECT_TRUE(c.eal.extra_args.empty());
  ASSERT_EQ(c.ports.size(), 2u);
  const PortConfig& west = c.ports[0];
  EXPECT_EQ(west.name, "west");
  EXPECT_EQ(west.device, "net_ring0");
  EXPECT_FALSE(west.is_pci);
  EXPECT_EQ(west.devargs, "");
  EXPECT_EQ(west.rx_queues, 1u);
  EXPECT_EQ(west.tx_queues, 1u) << "one per worker";
  EXPECT_EQ(west.rx_descriptors, 1024u);
  EXPECT_EQ(west.tx_descriptors, 1024u);
  EXPECT_EQ(west.mtu, 1500u);
  EXPECT_FALSE(west.mac.has_value());
  EXPECT_TRUE(west.promiscuous);
  EXPECT_EQ(west.rss, RssMode::Symmetric);
  ASSERT_EQ(west.pipeline.size(), 2u);
  EXPECT_EQ(west.pipeline[0].stage, "parse");
  EXPECT_EQ(west.pipeline[0].peer, "");
  EXPECT_EQ(west.pipeline[1].stage, "xconnect");
  EXPECT_EQ(west.pipeline[1].peer, "east");
  EXPECT_TRUE(c.workers_auto);
  ASSERT_EQ(c.workers.size(), 1u);
  EXPECT_EQ(c.workers[0].lcore, 1u);
  ASSERT_EQ(c.workers[0].rx.size(), 2u);
  EXPECT_EQ(c.workers[0].rx[0].port, "west");
  EXPECT_EQ(c.workers[0].rx[0].queue, 0u);
  EXPECT_EQ(c.workers[0].rx[1].port, "east");
  EXPECT_EQ(c.workers[0].rx[1].queue, 0u);
  EXPECT_EQ(c.burst_size, 32u);
  EXPECT_EQ(c.mempool.mbufs, 0u);
  EXPECT_EQ(c.mempool.cache_size, 256u);
  EXPECT_EQ(c.mempool.data_room, 2176u);
  EXPECT_TRUE(c.control.http.enabled);
  EXPECT_EQ(c.control.http.address, "127.0.0.1");
  EXPECT_EQ(c.control.http.port, 9180u);
  EXPECT_TRUE(c.control.telemetry);
  EXPECT_EQ(c.logging.level, "info");
}

TEST(ConfigTest, AutoWorkersRoundRobinQueuesOverNonMainLcores) {
  Config c = parse_ok(R"({"eal": {"lcores": "0-2"}, "ports": [
      {"name": "west", "device": "net_ring0", "rx_queues": 2, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})");
  ASSERT_EQ(c.workers.size(), 2u);
  EXPECT_EQ(c.workers[0].lcore, 1u);
  ASSERT_EQ(c.workers[0].rx.size(), 2u);
  EXPECT_EQ(c.workers[0].rx[0].port, "west");
  EXPECT_EQ(c.workers[0].rx[0].queue, 0u);
  EXPECT_EQ(c.workers[0].rx[1].port, "east");
  EXPECT_EQ(c.workers[0].rx[1].queue, 0u);
  EXPECT_EQ(c.workers[1].lcore, 2u);
  ASSERT_EQ(c.workers[1].rx.size(), 1u);
  EXPECT_EQ(c.workers[1].rx[0].port, "west");
  EXPECT_EQ(c.workers[1].rx[0].queue, 1u);
  EXPECT_EQ(c.ports[0].tx_queues, 2u);
  EXPECT_EQ(c.ports[1].tx_queues, 2u);
}

TEST(ConfigTest, AutoWorkersSkipLcoresWithNothingToPoll) {
  Config c = parse_ok(R"({"eal": {"lcores": "0-3"}, "ports": [$W, $E]})");
  ASSERT_EQ(c.workers.size(), 2u);
  EXPECT_EQ(c.workers[0].lcore, 1u);
  EXPECT_EQ(c.workers[1].lcore, 2u);
  EXPECT_EQ(c.ports[0].tx_queues, 2u);
}

TEST(ConfigTest, AutoWorkersAvoidAnExplicitMainLcore) {
  Config c = parse_ok(R"({"eal": {"lcores": "0-1", "main_lcore": 1}, "ports": [$W, $E]})");
  EXPECT_EQ(c.eal.main_lcore, 1u);
  ASSERT_EQ(c.workers.size(), 1u);
  EXPECT_EQ(c.workers[0].lcore, 0u);
}

TEST(ConfigTest, MainLcoreDefaultsToLowestLcore) {
  Config c = parse_ok(R"({"eal": {"lcores": "2,4-5"}, "ports": [$W, $E]})");
  EXPECT_EQ(c.eal.main_lcore, 2u);
  EXPECT_EQ(c.eal.lcores, (std::vector<unsigned>{2, 4, 5}));
  ASSERT_EQ(c.workers.size(), 2u);
  EXPECT_EQ(c.workers[0].lcore, 4u);
  EXPECT_EQ(c.workers[1].lcore, 5u);
}

TEST(ConfigTest, LcoresAsArrayBecomeAList) {
  Config c = parse_ok(R"({"eal": {"lcores": [1, 0]}, "ports": [$W, $E]})");
  EXPECT_EQ(c.eal.lcores_spec, "1,0");
  EXPECT_EQ(c.eal.lcores, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(c.eal.main_lcore, 0u);
}

TEST(ConfigTest, ExplicitWorkersAreKept) {
  Config c = parse_ok(R"({"eal": {"lcores": "0-2"}, "ports": [$W, $E],
      "workers": [{"lcore": 2, "rx": [{"port": "east", "queue": 0}]}, {"lcore": 1, "rx": [{"port": "west"}]}]})");
  EXPECT_FALSE(c.workers_auto);
  ASSERT_EQ(c.workers.size(), 2u);
  EXPECT_EQ(c.workers[0].lcore, 2u);
  EXPECT_EQ(c.workers[0].rx[0].port, "east");
  EXPECT_EQ(c.workers[1].lcore, 1u);
  EXPECT_EQ(c.workers[1].rx[0].port, "west");
  EXPECT_EQ(c.workers[1].rx[0].queue, 0u) << "queue defaults to 0";
  EXPECT_EQ(c.ports[0].tx_queues, 2u);
}

TEST(ConfigTest, PciAddressesAreRecognisedAndNormalised) {
  Config c = parse_ok(R"({$EAL, "ports": [
      {"name": "west", "device": "01:00.0", "devargs": "rxq_cqe_comp_en=0", "pipeline": [{"stage": "xconnect", "peer": "east"}]},
      {"name": "east", "device": "0000:01:00.1", "pipeline": [{"stage": "xconnect", "peer": "west"}]}]})");
  EXPECT_TRUE(c.ports[0].is_pci);
  EXPECT_EQ(c.ports[0].device, "0000:01:00.0");
  EXPECT_EQ(c.ports[0].devargs, "rxq_cqe_comp_en=0");
  EXPECT_TRUE(c.ports[1].is_pci);
  EXPECT_EQ(c.ports[1].device, "0000:01:00.1");
}

TEST(ConfigTest, MacIsParsed) {
  Config c = parse_ok(R"({$EAL, "ports": [
      {"name": "west", "device": "net_ring0", "mac": "02:AB:cd:00:00:01", "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})");
  ASSERT_TRUE(c.ports[0].mac.has_value());
  EXPECT_EQ(*c.ports[0].mac, (std::array<uint8_t, 6>{0x02, 0xab, 0xcd, 0x00, 0x00, 0x01}));
}

TEST(ConfigTest, PollingIsBusyUnlessTold) {
  const Config busy = parse_ok(R"({$EAL, "ports": [$W, $E]})");
  EXPECT_FALSE(busy.polling.sleep_when_idle);
  const Config sleepy =
      parse_ok(R"({$EAL, "ports": [$W, $E], "polling": {"idle": "sleep", "sleep_after_polls": 50, "max_sleep_us": 20}})");
  EXPECT_TRUE(sleepy.polling.sleep_when_idle);
  EXPECT_EQ(sleepy.polling.sleep_after_polls, 50u);
  EXPECT_EQ(sleepy.polling.max_sleep_us, 20u);
  EXPECT_EQ(to_json(sleepy)["polling"],
            nlohmann::json::parse(R"({"idle": "sleep", "sleep_after_polls": 50, "max_sleep_us": 20})"));
}

TEST(ConfigTest, MbufsZeroMeansAutomatic) {
  EXPECT_EQ(parse_ok(R"({$EAL, "ports": [$W, $E], "mempool": {"mbufs": 0}})").mempool.mbufs, 0u);
  EXPECT_EQ(parse_ok(R"({$EAL, "ports": [$W, $E], "mempool": {"mbufs": 1024}})").mempool.mbufs, 1024u);
}

TEST(ConfigTest, Ipv6HttpAddressIsAccepted) {
  EXPECT_EQ(parse_ok(R"({$EAL, "ports": [$W, $E], "control": {"http": {"address": "::1"}}})").control.http.address,
            "::1");
}

TEST(ConfigTest, FindPortByName) {
  Config c = parse_ok(R"({$EAL, "ports": [$W, $E]})");
  EXPECT_EQ(c.port_index("west"), 0);
  EXPECT_EQ(c.port_index("east"), 1);
  EXPECT_EQ(c.port_index("north"), -1);
  ASSERT_NE(c.find_port("east"), nullptr);
  EXPECT_EQ(c.find_port("east")->device, "net_ring1");
  EXPECT_EQ(c.find_port("north"), nullptr);
}

TEST(ConfigTest, EffectiveConfigShowsResolvedValues) {
  nlohmann::json j = to_json(parse_ok(R"({$EAL, "ports": [$W, $E]})"));
  EXPECT_EQ(j["eal"]["lcores"], "0-1");
  EXPECT_EQ(j["eal"]["main_lcore"], 0);
  EXPECT_EQ(j["ports"][0]["tx_queues"], 1);
  EXPECT_EQ(j["ports"][0]["rss"], "symmetric");
  EXPECT_FALSE(j["ports"][0].contains("mac"));
  EXPECT_EQ(j["ports"][0]["pipeline"], nlohmann::json::parse(R"([{"stage": "parse"}, {"stage": "xconnect", "peer": "east"}])"));
  EXPECT_EQ(j["workers"], nlohmann::json::parse(R"([{"lcore": 1, "rx": [{"port": "west", "queue": 0}, {"port": "east", "queue": 0}]}])"));
  EXPECT_EQ(j["mempool"]["mbufs"], 0);
  EXPECT_EQ(j["logging"]["level"], "info");
}

// --check-config prints to_json; feeding that back must give the same config.
void expect_round_trip(const std::string& text) {
  nlohmann::json first = to_json(parse_ok(text));
  ParseResult again = parse_config_text(first.dump(2), "effective.json");
  ASSERT_TRUE(again.ok()) << ::testing::PrintToString(again.errors) << "\n" << first.dump(2);
  EXPECT_EQ(to_json(*again.config), first);
}

TEST(ConfigTest, MinimalConfigRoundTrips) { expect_round_trip(R"({$EAL, "ports": [$W, $E]})"); }

TEST(ConfigTest, FullConfigRoundTrips) {
  expect_round_trip(R"({
    "eal": {"lcores": "0-3", "main_lcore": 3, "hugepages": false, "memory_mb": 1024, "file_prefix": "rt",
            "extra_args": ["--log-level=pmd.net.ring:debug"]},
    "ports": [
      {"name": "west", "device": "net_af_packet0", "devargs": "iface=veth0,qpairs=2", "rx_queues": 2, "tx_queues": 4,
       "rx_descriptors": 512, "tx_descriptors": 2048, "mtu": 1400, "mac": "02:00:00:00:00:0A", "promiscuous": false,
       "rss": "off", "pipeline": ["parse", {"stage": "xconnect", "peer": "east"}]},
      {"name": "east", "device": "0000:03:00.0", "pipeline": [{"stage": "xconnect", "peer": "west"}]}],
    "workers": [{"lcore": 0, "rx": [{"port": "west", "queue": 0}]},
                {"lcore": 1, "rx": [{"port": "west", "queue": 1}, {"port": "east", "queue": 0}]}],
    "burst_size": 64,
    "mempool": {"mbufs": 16383, "cache_size": 0, "data_room": 4096},
    "control": {"http": {"enabled": false, "address": "::", "port": 8080}, "telemetry": false},
    "logging": {"level": "debug"}})");
}

TEST(ConfigTest, AutoWorkersRoundTripAsExplicitWorkers) {
  std::string text = R"({"eal": {"lcores": "0-2"}, "ports": [
      {"name": "west", "device": "net_ring0", "rx_queues": 3, "pipeline": [{"stage": "xconnect", "peer": "east"}]}, $E]})";
  expect_round_trip(text);
  ParseResult again = parse_config_text(to_json(parse_ok(text)).dump(), "effective.json");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.config->workers_auto);
}

TEST(ConfigTest, LoadsAFile) {
  char path[] = "/tmp/sluice-unit-config-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << expand(R"({$EAL, "ports": [$W, $E]})");
  }
  ParseResult result = load_config_file(path);
  EXPECT_TRUE(result.ok()) << ::testing::PrintToString(result.errors);
  {
    std::ofstream out(path);
    out << "{\n  \"eal\": ";
  }
  result = load_config_file(path);
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].rfind(std::string(path) + ":2:10: malformed JSON: ", 0), 0u) << result.errors[0];
  std::remove(path);
}

TEST(ConfigTest, MissingFileIsOneError) {
  ParseResult result = load_config_file("/nonexistent/sluice.json");
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.errors, ElementsAre("/nonexistent/sluice.json: cannot read the config file"));
}

TEST(ConfigTest, DevargValueFindsAWholeKey) {
  EXPECT_EQ(devarg_value("iface=veth0,qpairs=2", "iface"), "veth0");
  EXPECT_EQ(devarg_value("qpairs=2,iface=veth0", "iface"), "veth0");
  EXPECT_EQ(devarg_value("rx_iface=a,iface=b", "iface"), "b") << "rx_iface= is another key";
  EXPECT_EQ(devarg_value("iface=,qpairs=2", "iface"), "");
  EXPECT_EQ(devarg_value("qpairs=2", "iface"), "");
  EXPECT_EQ(devarg_value("", "iface"), "");
  EXPECT_EQ(devarg_value("iface", "iface"), "") << "a key without '=' has no value";
}

TEST(ConfigTest, KernelIfaceOnlyForKernelBackedDevices) {
  PortConfig port;
  port.devargs = "iface=sl0,qpairs=1";
  for (const char* device : {"net_af_packet0", "eth_af_packet1", "net_af_xdp0", "net_tap3"}) {
    port.device = device;
    EXPECT_EQ(port.kernel_iface(), "sl0") << device;
  }
  for (const char* device : {"net_pcap0", "net_ring0", "0000:01:00.0"}) {
    port.device = device;
    EXPECT_EQ(port.kernel_iface(), "") << device;
  }
}

TEST(ConfigTest, LogLevelNamesMatchTheContract) {
  EXPECT_THAT(log_level_names(), ElementsAre("trace", "debug", "info", "warn", "error", "critical", "off"));
}

}  // namespace
}  // namespace sluice::config
