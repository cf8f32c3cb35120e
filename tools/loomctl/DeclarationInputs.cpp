// DeclarationInputs.h.
#include "tools/loomctl/DeclarationInputs.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tools/loomctl/Output.h"

namespace loom::loomctl {
namespace {

constexpr std::size_t kMaxBytes = std::size_t{16} << 20;

// Read no further than loomd would take it (its HTTP body limit), so `-f /dev/zero` is an
// error, not a process that grows forever.
std::string readStream(std::istream& in, const std::string& name) {
  std::string out;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<std::size_t>(in.gcount()));
    if (out.size() > kMaxBytes) throw CommandError("'" + name + "' is larger than 16 MiB: split it into several files");
  }
  return out;
}

std::string readPath(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CommandError("cannot read '" + path + "'");
  return readStream(in, path);
}

// A fabric file (`blades:` at the top, the simulator's and `plan --fabric`'s input) has
// no `kind:` documents.
bool looksLikeFabricFile(const std::string& text) {
  return (text.rfind("blades:", 0) == 0 || text.find("\nblades:") != std::string::npos) &&
         text.find("kind:") == std::string::npos;
}

}  // namespace

DeclarationInputs DeclarationInputs::read(const std::vector<std::string>& args, std::ostream& notes) {
  DeclarationInputs in;
  bool stdinRead = false;
  for (const auto& arg : args) {
    if (arg == "-") {
      if (stdinRead) throw CommandError("-f -: standard input can be given once");
      stdinRead = true;
      in.sources.emplace_back("stdin", readStream(std::cin, "stdin"));
      continue;
    }
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      std::vector<std::string> files;
      for (const auto& entry : std::filesystem::directory_iterator(arg, ec)) {
        const auto ext = entry.path().extension().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(entry.path().string());
      }
      if (ec) throw CommandError("cannot read directory '" + arg + "': " + ec.message());
      if (files.empty()) throw CommandError("directory '" + arg + "' has no .yaml or .yml files");
      std::sort(files.begin(), files.end());
      const std::size_t before = in.sources.size();
      for (const auto& f : files) {
        std::string text = readPath(f);
        if (looksLikeFabricFile(text)) {
          notes << "loomctl: skipping " << f << ": a fabric file, not declarations\n";
          continue;
        }
        in.sources.emplace_back(f, std::move(text));
      }
      if (in.sources.size() == before) throw CommandError("directory '" + arg + "' has no declaration files");
      continue;
    }
    in.sources.emplace_back(arg, readPath(arg));
  }
  return in;
}

config::DeclarationsResult DeclarationInputs::load() const {
  for (const auto& [name, text] : sources)
    if (looksLikeFabricFile(text))
      throw CommandError("'" + name +
                         "' is a fabric file (the blades `loom-agent --simulate` runs and `loomctl plan --fabric` "
                         "places onto), not declarations: declarations have `kind:` documents");
  return config::loadDeclarationSources(sources);
}

std::vector<std::string> DeclarationInputs::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : sources) out.push_back(name);
  return out;
}

CLI::Option* addFileOption(CLI::App* cmd, std::vector<std::string>& files) {
  return cmd
      ->add_option("-f,--file", files,
                   "Declaration file (YAML, multi-document), a directory of them, or - for standard input; repeat "
                   "for several")
      ->required()
      ->type_name("FILE");
}

}  // namespace loom::loomctl
