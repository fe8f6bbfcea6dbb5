#include "pipeline/packet_meta.h"

namespace sluice::pipeline {

int g_packet_meta_offset = -1;
int g_flow_meta_offset = -1;

bool register_packet_meta() {
  if (g_packet_meta_offset >= 0 && g_flow_meta_offset >= 0) return true;
  static const rte_mbuf_dynfield desc = {
      "sluice_packet_meta", sizeof(PacketMeta), alignof(PacketMeta), 0,
  };
  static const rte_mbuf_dynfield flow_desc = {
      "sluice_flow_meta", sizeof(FlowMeta), alignof(FlowMeta), 0,
  };
  g_packet_meta_offset = rte_mbuf_dynfield_register(&desc);
  g_flow_meta_offset = rte_mbuf_dynfield_register(&flow_desc);
  return g_packet_meta_offset >= 0 && g_flow_meta_offset >= 0;
}

}  // namespace sluice::pipeline
