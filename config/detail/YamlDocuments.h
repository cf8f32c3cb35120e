// Internal: a multi-document YAML text -> one tree per document, each parsed alone so a
// syntax error in one document still lets every other document be checked. The only
// place yaml-cpp is called (its parser's events build YamlNode trees), and where every
// input is held to the limits below whatever the library does with it: config/README.md
// says what each limit guards against and why it is generous for real declarations.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "config/detail/Diagnostics.h"
#include "config/detail/FieldReader.h"
#include "config/detail/YamlNode.h"

namespace loom::config::detail {

// What one input (a file, an API body) may hold. The yardstick: 10,000 servers written out
// one document each (DESIGN's apply target) are 2 MB, 10,000 documents and 310,000 nodes,
// parsed in ~0.7 s; each limit leaves three to five times that. The time is yaml-cpp's:
// it scans 3 MB/s of long scalars and 330,000 nodes/s here, so an input at these limits
// holds loomd's core for ~3 s, where 32 MiB held it 10-18 s. (100,000 servers: templates,
// or several applies.)
struct YamlLimits {
  std::size_t maxBytes = std::size_t{8} << 20;
  // Documents, empty ones included.
  std::size_t maxDocuments = 50'000;
  // Nodes, an alias counting as every node it stands for (so a "billion laughs" of nested
  // aliases is refused before anything walks it). A server is 20-40; a node costs ~90
  // bytes here.
  std::size_t maxNodes = 1'000'000;
  // Collections inside collections. A declaration nests 4 deep; yaml-cpp's parser
  // recurses once per level.
  int maxDepth = 64;
  // Bytes of one scalar (a key or a value). The longest real values are paths and
  // kernel command lines (4 KiB at most).
  std::size_t maxScalarBytes = std::size_t{64} << 10;
  // Bytes yaml-cpp's scanner may read past the last node its parser reported. It holds a
  // flow collection's tokens ([...], {...}) until the collection ends, ~140 bytes each:
  // up to 140 bytes of memory per byte of input ("0,0,..."). 256 KiB (~37 MB) holds any
  // real flow list: 10,000 blade names are 100 KiB.
  std::size_t maxLookahead = std::size_t{256} << 10;
};

struct Document {
  const YamlNode* node = nullptr;  // owned by the Documents it came in
  Source source;
};

struct Documents {
  std::vector<Document> documents;  // non-empty documents, in order
  bool incomplete = false;          // some document had a syntax error or hit a limit (reported)
  std::unique_ptr<std::deque<YamlNode>> nodes = std::make_unique<std::deque<YamlNode>>();
};

// Parses every document of `text`. Empty documents (only comments) are skipped. A text
// that is not printable UTF-8, or goes past a limit that concerns the whole input (bytes,
// documents, nodes), gives one diagnostic and no documents; a document that goes past a
// limit of its own (depth, scalar size, a recursive alias) or has a syntax error gives one
// diagnostic and is skipped like any other syntax error. Bounded in time and memory by
// `limits`, whatever the input.
Documents parseDocuments(const std::string& text, const std::string& file, Diagnostics& diagnostics,
                         const YamlLimits& limits = {});

}  // namespace loom::config::detail
