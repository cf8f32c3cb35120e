#include "config/detail/YamlDocuments.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cstdio>
#include <istream>
#include <optional>
#include <sstream>
#include <streambuf>
#include <string_view>
#include <unordered_map>

namespace loom::config::detail {

namespace {

// --- The text as a whole ---------------------------------------------------------------

// Where byte `offset` of `text` is, 1-based, columns counted in bytes as yaml-cpp counts
// them (a UTF-8 byte-order mark is not part of the first line's columns, as for yaml-cpp).
Location locateByte(const std::string& text, std::size_t offset, const std::string& file) {
  int line = 1;
  std::size_t lineStart = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      lineStart = i + 1;
    }
  }
  if (lineStart == 0 && text.compare(0, 3, "\xEF\xBB\xBF") == 0 && offset >= 3) lineStart = 3;
  return Location{file, line, static_cast<int>(offset - lineStart) + 1};
}

std::string codePoint(char32_t c) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "U+%04X", static_cast<unsigned>(c));
  return buffer;
}

// YAML text is printable Unicode in UTF-8 here (YAML 1.2's c-printable: tab, line breaks,
// and no other C0 or C1 control, no surrogate, no U+FFFE/U+FFFF). yaml-cpp is lenient and
// inconsistent about the rest: it drops U+0004, misreads a NUL as an escape, and passes
// invalid UTF-8 through into values that JSON answers could then not carry. The first
// offending byte is reported, and the text refused.
bool checkEncoding(const std::string& text, const std::string& file, Diagnostics& diagnostics) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  for (std::size_t i = 0; i < size;) {
    const unsigned char b = bytes[i];
    if (b < 0x80) {
      if (b >= 0x20 && b != 0x7F) {
        ++i;
        continue;
      }
      if (b == '\t' || b == '\n' || b == '\r') {
        ++i;
        continue;
      }
      std::string message = "character " + codePoint(b) + " is not allowed in YAML";
      message += b == 0 ? " (a NUL byte: is this a binary or UTF-16 file?)"
                        : " (no control character other than tab and line breaks is)";
      diagnostics.error(locateByte(text, i, file), message);
      return false;
    }
    // The length of the sequence, the smallest code point it may encode (no overlong
    // forms), and the payload bits of its first byte.
    std::size_t length = 0;
    char32_t c = 0, min = 0;
    if ((b & 0xE0) == 0xC0)
      length = 2, c = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0)
      length = 3, c = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0)
      length = 4, c = b & 0x07, min = 0x10000;
    bool valid = length != 0 && i + length <= size;
    for (std::size_t k = 1; valid && k < length; ++k) {
      valid = (bytes[i + k] & 0xC0) == 0x80;
      c = (c << 6) | (bytes[i + k] & 0x3F);
    }
    if (!valid || c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      std::string message = std::string("not UTF-8 text: invalid byte ") + hex;
      if (i == 0 && (text.compare(0, 2, "\xFF\xFE") == 0 || text.compare(0, 2, "\xFE\xFF") == 0)) {
        message += " (a UTF-16 byte-order mark; save the file as UTF-8)";
      }
      diagnostics.error(locateByte(text, i, file), message);
      return false;
    }
    const bool printable = c == 0x85 || (c >= 0xA0 && c != 0xFFFE && c != 0xFFFF);
    if (!printable) {
      diagnostics.error(locateByte(text, i, file), "character " + codePoint(c) + " is not allowed in YAML");
      return false;
    }
    i += length;
  }
  return true;
}

// --- Documents -------------------------------------------------------------------------

struct Chunk {
  std::string text;
  int firstLine = 0;  // 0-based line of the file where the chunk starts
};

bool isDocumentStart(std::string_view line) {
  // A "---" at column 0 followed by a blank or the end of the line always starts a
  // document: YAML forbids that sequence inside scalars, so splitting here is exact.
  return line.substr(0, 3) == "---" && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

bool onlyDirectivesOrComments(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos) continue;
    if (line[start] == '#' || (start == 0 && line[0] == '%')) continue;
    return false;
  }
  return true;
}

// Every chunk ends with a line break, as yaml-cpp is given it (a text without a final
// one gets one). Every chunk but the first starts a document, so splitting stops after
// maxChunks: `rest` is then the 0-based line where the text was left unsplit.
std::vector<Chunk> splitChunks(const std::string& text, std::size_t maxChunks, std::optional<int>& rest) {
  std::vector<Chunk> chunks(1);
  int lineNo = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    if (isDocumentStart(line) && !chunks.back().text.empty()) {
      // Directives ("%YAML 1.2") before "---" belong to the document that follows.
      if (onlyDirectivesOrComments(chunks.back().text) && chunks.back().text.find('%') != std::string::npos) {
        // keep accumulating into the same chunk
      } else if (chunks.size() == maxChunks) {
        rest = lineNo;
        return chunks;
      } else {
        chunks.push_back(Chunk{std::string(), lineNo});
      }
    }
    chunks.back().text.append(line);
    chunks.back().text += '\n';
    ++lineNo;
    start = end + 1;
  }
  return chunks;
}

// yaml-cpp reports "not found" errors (an unclosed bracket or quote) at the end of the
// text it was given, which is the next document's "---": point at the end of this
// document's last line instead, where the operator has to look.
Location syntaxErrorLocation(const Chunk& chunk, const Source& source, const YAML::Mark& mark) {
  std::vector<std::string> lines;
  std::istringstream in(chunk.text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  if (mark.line >= 0 && static_cast<std::size_t>(mark.line) < lines.size()) {
    return source.locate(mark.line, mark.column);
  }
  std::size_t last = lines.size();
  while (last > 0 && lines[last - 1].find_first_not_of(" \t\r") == std::string::npos) --last;
  if (last == 0) return source.locate(mark.line, mark.column);
  const std::string& text = lines[last - 1];
  std::size_t end = text.find_last_not_of(" \t\r");
  return Location{source.file, source.firstLine + static_cast<int>(last), static_cast<int>(end) + 2};
}

}  // namespace

// A limit was reached: where, what, and whether the whole input is refused (a budget of
// the input) or only the document (a limit of one node).
struct YamlLimitReached {
  YAML::Mark mark;
  std::string message;
  bool wholeInput = false;
};

// What one input has used so far, across its documents.
struct YamlBudget {
  std::size_t documents = 0;
  std::size_t nodes = 0;  // aliases counted as the nodes they stand for
};

// Builds one document's YamlNode tree from yaml-cpp's parser events and holds it to the
// limits as it goes: it throws YamlLimitReached from inside the parser, which unwinds it, so
// nothing past a limit is ever built or walked.
class YamlTreeBuilder : public YAML::EventHandler {
 public:
  YamlTreeBuilder(std::deque<YamlNode>& nodes, YamlBudget& budget, const YamlLimits& limits)
      : nodes_(nodes), budget_(budget), limits_(limits) {}

  const YamlNode* root() const { return root_; }
  const YAML::Mark& start() const { return start_; }
  // Where the last node reported starts: how far the parser has got.
  const YAML::Mark& last() const { return last_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = last_ = mark;
    root_ = nullptr;
    open_.clear();
    anchors_.clear();
    anchorNames_.clear();
    if (++budget_.documents > limits_.maxDocuments) {
      throw YamlLimitReached{mark, "more than " + std::to_string(limits_.maxDocuments) + " YAML documents in one input",
                             true};
    }
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(add(YamlNode::Type::Null, mark), anchor); }

  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    if (value.size() > limits_.maxScalarBytes) {
      throw YamlLimitReached{mark, "a YAML scalar of " + std::to_string(value.size()) +
                                       " bytes; the most accepted is " + std::to_string(limits_.maxScalarBytes)};
    }
    YamlNode* node = add(YamlNode::Type::Scalar, mark);
    node->scalar_ = value;
    leaf(node, anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    // yaml-cpp refuses an unknown anchor itself; one it knows that is not complete is
    // still open: the alias is inside the node it names, which no walk would ever leave.
    if (it == anchors_.end()) {
      throw YamlLimitReached{mark, "alias '*" + anchorName(anchor) + "' refers to a node that contains it"};
    }
    // The alias is the node it names (as yaml-cpp's own nodes are): nothing is copied,
    // but whatever reads the tree walks it once more, so it costs every node it holds.
    last_ = mark;
    charge(it->second.weight, mark, anchorName(anchor));
    attach(it->second.node);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(add(YamlNode::Type::Sequence, mark), anchor, mark);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(add(YamlNode::Type::Map, mark), anchor, mark);
  }
  void OnMapEnd() override { close(); }

  void OnAnchor(const YAML::Mark&, const std::string& name) override { pendingAnchorName_ = name; }

 private:
  struct Anchored {
    const YamlNode* node;
    std::size_t weight;  // nodes it stands for
  };
  struct Open {
    YamlNode* node;
    YAML::anchor_t anchor;
    std::size_t nodesBefore;  // budget_.nodes before it
  };

  // `alias` names the alias that costs `nodes`, if one does.
  void charge(std::size_t nodes, const YAML::Mark& mark, const std::string& alias = {}) {
    if (nodes > limits_.maxNodes - budget_.nodes) {
      const std::string what = alias.empty() ? "more than" : "alias '*" + alias + "' takes the input past";
      throw YamlLimitReached{
          mark,
          what + " " + std::to_string(limits_.maxNodes) + " YAML nodes (an alias counts as every node it stands for)",
          true};
    }
    budget_.nodes += nodes;
  }

  YamlNode* add(YamlNode::Type type, const YAML::Mark& mark) {
    last_ = mark;
    charge(1, mark);
    YamlNode& node = nodes_.emplace_back(type, mark.line, mark.column);
    attach(&node);
    return &node;
  }

  void attach(const YamlNode* node) {
    if (open_.empty()) {
      root_ = node;
    } else {
      open_.back().node->children_.push_back(node);
    }
  }

  void leaf(const YamlNode* node, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = Anchored{node, 1};
    nameAnchor(anchor);
  }

  void open(YamlNode* node, YAML::anchor_t anchor, const YAML::Mark& mark) {
    if (open_.size() >= static_cast<std::size_t>(limits_.maxDepth)) {
      throw YamlLimitReached{mark, "YAML nested more than " + std::to_string(limits_.maxDepth) +
                                       " deep (collections inside collections; a declaration nests 4)"};
    }
    nameAnchor(anchor);
    open_.push_back(Open{node, anchor, budget_.nodes - 1});
  }

  void close() {
    const Open done = open_.back();
    open_.pop_back();
    if (done.anchor != YAML::NullAnchor) anchors_[done.anchor] = Anchored{done.node, budget_.nodes - done.nodesBefore};
  }

  void nameAnchor(YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor && !pendingAnchorName_.empty()) anchorNames_[anchor] = pendingAnchorName_;
    pendingAnchorName_.clear();
  }

  std::string anchorName(YAML::anchor_t anchor) const {
    auto it = anchorNames_.find(anchor);
    return it == anchorNames_.end() ? "?" : it->second;
  }

  std::deque<YamlNode>& nodes_;
  YamlBudget& budget_;
  const YamlLimits& limits_;
  YAML::Mark start_;
  YAML::Mark last_;
  const YamlNode* root_ = nullptr;
  std::vector<Open> open_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  std::unordered_map<YAML::anchor_t, std::string> anchorNames_;
  std::string pendingAnchorName_;
};

namespace {

// yaml-cpp's parser reads its stream in blocks through sgetn; this buffer hands it one
// chunk in place, a window at a time, and refuses to read further than
// YamlLimits::maxLookahead past the last node the parser reported. yaml-cpp's scanner keeps
// every token of a flow collection until the collection ends (it may yet turn out to be a
// mapping key), up to 140 bytes of memory per byte of input, before the parser reports
// any of it: 64 MiB of "[0,0,...]" took 3.9 GB. Throwing here unwinds yaml-cpp from inside.
class LookaheadGuard : public std::streambuf {
 public:
  LookaheadGuard(const std::string& text, const YamlTreeBuilder& builder, const YamlLimits& limits)
      : text_(text), builder_(builder), limits_(limits) {
    char* begin = const_cast<char*>(text_.data());  // only ever read
    setg(begin, begin, begin);
  }

 protected:
  int_type underflow() override {
    const std::size_t read = static_cast<std::size_t>(egptr() - text_.data());
    if (read >= text_.size()) return traits_type::eof();
    const YAML::Mark& last = builder_.last();
    if (read > static_cast<std::size_t>(std::max(last.pos, 0)) + limits_.maxLookahead) {
      throw YamlLimitReached{last,
                             "a YAML flow collection ([...] or {...}) or scalar after this point is longer than " +
                                 std::to_string(limits_.maxLookahead) +
                                 " bytes, the most read ahead (write a long list as a block sequence, one "
                                 "'- item' per line)"};
    }
    char* begin = const_cast<char*>(text_.data());
    const std::size_t end = std::min(text_.size(), read + kWindow);
    setg(begin, begin + read, begin + end);
    return traits_type::to_int_type(*gptr());
  }

 private:
  static constexpr std::size_t kWindow = 4096;
  const std::string& text_;
  const YamlTreeBuilder& builder_;
  const YamlLimits& limits_;
};

// The token yaml-cpp stopped at, as the operator wrote it: up to the next blank.
std::string tokenAt(const std::string& text, std::size_t pos) {
  std::size_t end = pos;
  while (end < text.size() && end - pos < 20 && text[end] != ' ' && text[end] != '\t' && text[end] != '\n' &&
         text[end] != '\r')
    ++end;
  if (end == pos + 1) return text.substr(pos, 1);
  // A multi-byte token: cut where a character starts, so messages stay UTF-8.
  while (end < text.size() && end > pos && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(pos, end - pos);
}

}  // namespace

Documents parseDocuments(const std::string& text, const std::string& file, Diagnostics& diagnostics,
                         const YamlLimits& limits) {
  Documents out;
  if (text.size() > limits.maxBytes) {
    diagnostics.error(Location{file, 0, 0}, "the input is " + std::to_string(text.size()) +
                                                " bytes; the most read at once is " + std::to_string(limits.maxBytes) +
                                                " (split it into several applies)");
    out.incomplete = true;
    return out;
  }
  if (!checkEncoding(text, file, diagnostics)) {
    out.incomplete = true;
    return out;
  }
  YamlBudget budget;
  std::optional<int> rest;
  for (const Chunk& chunk : splitChunks(text, limits.maxDocuments + 1, rest)) {
    Source source{file, chunk.firstLine};
    std::vector<Document> documents;
    YamlTreeBuilder builder(*out.nodes, budget, limits);
    LookaheadGuard buffer(chunk.text, builder, limits);
    std::istream in(&buffer);
    try {
      YAML::Parser parser(in);
      std::size_t previousStart = std::string::npos;
      while (parser.HandleNextDocument(builder)) {
        // A document that consumed nothing is followed by the same one forever: yaml-cpp
        // 0.7 leaves a token it cannot start a node with (a stray ',') where it was and
        // reports an empty document each time (jbeder/yaml-cpp#1040).
        const auto start = static_cast<std::size_t>(builder.start().pos);
        if (start == previousStart) {
          const std::string token = tokenAt(chunk.text, start);
          std::string message = "YAML syntax error: unexpected '" + token + "'";
          if (token == ",") message += " (a comma separates items only inside [ ] or { })";
          throw YamlLimitReached{builder.start(), message};
        }
        previousStart = start;
        if (builder.root() && !builder.root()->isNull()) documents.push_back(Document{builder.root(), source});
      }
    } catch (const YamlLimitReached& limit) {
      diagnostics.error(source.locate(limit.mark.line, limit.mark.column), limit.message);
      out.incomplete = true;
      if (limit.wholeInput) {
        out.documents.clear();
        return out;
      }
      continue;
    } catch (const YAML::Exception& e) {
      diagnostics.error(syntaxErrorLocation(chunk, source, e.mark), "YAML syntax error: " + e.msg);
      out.incomplete = true;
      continue;
    }
    out.documents.insert(out.documents.end(), documents.begin(), documents.end());
  }
  if (rest) {
    // Not reached when those chunks held more documents than allowed, as they do unless
    // some failed to parse: never accept a text whose tail was not read.
    diagnostics.error(Location{file, *rest + 1, 1},
                      "more than " + std::to_string(limits.maxDocuments) + " YAML documents in one input");
    out.documents.clear();
    out.incomplete = true;
  }
  return out;
}

}  // namespace loom::config::detail
