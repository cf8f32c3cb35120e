#include "config/detail/YamlDocuments.h"

#include <sstream>

namespace loom::config::detail {

namespace {

struct Chunk {
  std::string text;
  int firstLine = 0;  // 0-based line of the file where the chunk starts
};

bool isDocumentStart(const std::string& line) {
  // A "---" at column 0 followed by a blank or the end of the line always starts a
  // document: YAML forbids that sequence inside scalars, so splitting here is exact.
  return line.rfind("---", 0) == 0 && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
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

std::vector<Chunk> splitChunks(const std::string& text) {
  std::vector<Chunk> chunks(1);
  std::istringstream in(text);
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    if (isDocumentStart(line) && !chunks.back().text.empty()) {
      // Directives ("%YAML 1.2") before "---" belong to the document that follows.
      if (onlyDirectivesOrComments(chunks.back().text) && chunks.back().text.find('%') != std::string::npos) {
        // keep accumulating into the same chunk
      } else {
        chunks.push_back(Chunk{std::string(), lineNo});
      }
    }
    chunks.back().text += line;
    chunks.back().text += '\n';
    ++lineNo;
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
  if (mark.line >= 0 && static_cast<std::size_t>(mark.line) < lines.size()) return source.locate(mark);
  std::size_t last = lines.size();
  while (last > 0 && lines[last - 1].find_first_not_of(" \t\r") == std::string::npos) --last;
  if (last == 0) return source.locate(mark);
  const std::string& text = lines[last - 1];
  std::size_t end = text.find_last_not_of(" \t\r");
  return Location{source.file, source.firstLine + static_cast<int>(last), static_cast<int>(end) + 2};
}

}  // namespace

Documents parseDocuments(const std::string& text, const std::string& file, Diagnostics& diagnostics) {
  Documents out;
  for (const Chunk& chunk : splitChunks(text)) {
    Source source{file, chunk.firstLine};
    try {
      for (const YAML::Node& node : YAML::LoadAll(chunk.text)) {
        if (node.IsNull()) continue;
        out.documents.push_back(Document{node, source});
      }
    } catch (const YAML::Exception& e) {
      diagnostics.error(syntaxErrorLocation(chunk, source, e.mark), "YAML syntax error: " + e.msg);
      out.incomplete = true;
    }
  }
  return out;
}

}  // namespace loom::config::detail
