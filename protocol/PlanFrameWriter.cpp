#include "protocol/PlanFrameWriter.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string_view>

namespace loom::protocol {
namespace {

// The writer must write every field encode() writes. A field added to these types changes
// their size (unless it fits in padding) and stops the build here, so it is not forgotten
// (nor in tests/protocol/PlanFrameWriterTest.cpp).
static_assert(sizeof(PlanMsg) == sizeof(std::vector<PlanStep>) + sizeof(std::uint64_t),
              "PlanMsg has a new field: write it in writePlanFrame");
static_assert(sizeof(PlanStep) ==
                  sizeof(std::uint64_t) * 2 + sizeof(std::string) * 2 + sizeof(std::optional<ServerSpec>),
              "PlanStep has a new field: write it in writePlanFrame");
static_assert(sizeof(ServerSpec) == sizeof(std::string) * 5 + sizeof(std::uint64_t) * 2 +
                                        sizeof(std::vector<ServerSpec::Nic>) * 2 + sizeof(std::uint64_t),
              "ServerSpec has a new field: write it in writePlanFrame");

using Out = rapidjson::Writer<rapidjson::StringBuffer>;

void key(Out& w, std::string_view k) { w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size())); }
void text(Out& w, std::string_view k, std::string_view v) {
  key(w, k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

// Keys in the order nlohmann's dump() writes them (by name), fields as toJson(ServerSpec)
// has them.
void writeSpec(Out& w, const ServerSpec& s) {
  w.StartObject();
  if (!s.cmdline.empty()) text(w, "cmdline", s.cmdline);
  key(w, "disks");
  w.StartArray();
  for (const auto& d : s.disks) {
    w.StartObject();
    text(w, "format", d.format);
    text(w, "path", d.path);
    key(w, "read_only");
    w.Bool(d.readOnly);
    w.EndObject();
  }
  w.EndArray();
  if (!s.initrd.empty()) text(w, "initrd", s.initrd);
  if (!s.kernel.empty()) text(w, "kernel", s.kernel);
  key(w, "memory_mib");
  w.Uint64(s.memoryMib);
  text(w, "name", s.name);
  key(w, "nics");
  w.StartArray();
  for (const auto& n : s.nics) {
    w.StartObject();
    text(w, "mac", n.mac);
    text(w, "network", n.network);
    if (n.vlan) {
      key(w, "vlan");
      w.Int(*n.vlan);
    }
    w.EndObject();
  }
  w.EndArray();
  text(w, "uuid", s.uuid);
  key(w, "vcpus");
  w.Uint(s.vcpus);
  text(w, "xen_type", pool::toString(s.xenType));
  w.EndObject();
}

}  // namespace

struct PlanFrameWriter::Impl {
  // A define's spec is some 300 bytes: one allocation for the usual frame.
  explicit Impl(std::size_t steps) : sb(nullptr, 64 + steps * 384), w(sb) {}
  rapidjson::StringBuffer sb;
  Out w;
};

PlanFrameWriter::PlanFrameWriter(std::size_t expectedSteps, std::uint64_t epoch)
    : impl_(std::make_unique<Impl>(expectedSteps)) {
  impl_->w.StartObject();
  if (epoch) {  // "epoch" sorts before "steps"
    key(impl_->w, "epoch");
    impl_->w.Uint64(epoch);
  }
  key(impl_->w, "steps");
  impl_->w.StartArray();
}

PlanFrameWriter::~PlanFrameWriter() = default;

void PlanFrameWriter::step(std::uint64_t op, pool::StepKind kind, const std::string& server,
                           const std::string& hypervisor, const ServerSpec* spec) {
  Out& w = impl_->w;
  w.StartObject();
  if (!hypervisor.empty()) text(w, "hypervisor", hypervisor);
  text(w, "kind", pool::toString(kind));
  key(w, "op");
  w.Uint64(op);
  text(w, "server", server);
  if (spec) {
    key(w, "spec");
    writeSpec(w, *spec);
  }
  w.EndObject();
  ++steps_;
}

std::string PlanFrameWriter::finish() {
  Out& w = impl_->w;
  w.EndArray();
  text(w, "type", type::kPlan);
  key(w, "v");
  w.Int(kVersion);
  w.EndObject();
  return std::string(impl_->sb.GetString(), impl_->sb.GetSize());
}

std::string writePlanFrame(const PlanMsg& m) {
  PlanFrameWriter w(m.steps.size(), m.epoch);
  for (const auto& s : m.steps) w.step(s.op, s.kind, s.server, s.hypervisor, s.spec ? &*s.spec : nullptr);
  return w.finish();
}

}  // namespace loom::protocol
