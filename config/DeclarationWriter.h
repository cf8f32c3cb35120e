// Declarations written back as the YAML that declares them (`loomctl get -o yaml`,
// GET /v1/declarations): what is applied, re-applied unchanged. Loading a document this
// writes gives the object it was written from (tests/config/DeclarationWriterTest.cpp).
#pragma once

#include <string>
#include <vector>

#include "pool/Model.h"

namespace loom::config {

struct WrittenDeclaration {
  std::string kind;       // "Partition", "Network", "IdentityPool", "Pool", "Server", "Blade"
  std::string name;       // a template's name for its replicas (written once, `replicas: N`)
  std::string partition;  // whose it is ("" for identity pools, blades and shared spare pools)
  std::string yaml;       // one document, without the `---` separator; ends in a newline
};

// Every object of `declarations` in the order a file would declare them (partitions,
// networks, identity pools, pools, servers, blades), each in its declaration order.
// Replicas of a template are written as the template (`replicas: N`); a replica whose
// power an operator changed since (server start/stop) is named in a comment, since the
// template can carry only one power.
std::vector<WrittenDeclaration> writeDeclarations(const pool::Declarations& declarations);

// The documents joined into one multi-document YAML text ("---" between them).
std::string joinDocuments(const std::vector<WrittenDeclaration>& documents);

}  // namespace loom::config
