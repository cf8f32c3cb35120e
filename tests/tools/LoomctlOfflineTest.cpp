// The real loomctl binary, run as an operator or a script would: exit codes, stdout
// and stderr of `validate` and `plan`.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace {

const std::string kLoomctl = LOOMCTL_PATH;
const std::string kExamples = LOOM_EXAMPLES_DIR;
const std::string kData = LOOM_TEST_DATA_DIR;

struct ProcessRun {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// Runs loomctl with `args` (already shell-quoted where needed), NO_COLOR set so the
// output is what a pipe sees.
ProcessRun loomctl(const std::string& args) {
  auto errPath = std::filesystem::temp_directory_path() /
                 ("loomctl-test-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".err");
  std::string command = "NO_COLOR=1 " + kLoomctl + " " + args + " 2>" + errPath.string();
  ProcessRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return run;
  std::array<char, 4096> buffer{};
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) run.out.append(buffer.data(), n);
  int status = ::pclose(pipe);
  run.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(errPath);
  std::ostringstream text;
  text << err.rdbuf();
  run.err = text.str();
  std::filesystem::remove(errPath);
  return run;
}

std::string exampleDeclarations() {
  std::string args;
  for (const char* f : {"partitions", "networks", "identity", "pools", "servers", "blades"}) {
    args += " -f " + kExamples + "/" + f + ".yaml";
  }
  return args;
}

TEST(LoomctlValidate, AcceptsTheExamplesAndSummarisesThem) {
  ProcessRun r = loomctl("validate" + exampleDeclarations());
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out,
            "ok: 2 partitions, 3 networks, 2 identity pools, 4 pools, 17 servers (from 3 templates), 8 blades\n");
  EXPECT_EQ(r.err, "");
}

TEST(LoomctlValidate, RejectsABadFileListingEveryErrorWithItsPosition) {
  const std::string file = kData + "/bad-servers.yaml";
  ProcessRun r = loomctl("validate -f " + file);
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out, "");
  std::istringstream lines(r.err);
  std::vector<std::string> errors;
  for (std::string line; std::getline(lines, line);) errors.push_back(line);
  ASSERT_EQ(errors.size(), 5u) << r.err;  // and the hint that a reference may be to an applied object
  EXPECT_EQ(errors[0], file + ":5:1: Server 'web': missing required field 'memory'");
  EXPECT_EQ(errors[1], file + ":8:7: Server 'web': pool: no Pool named 'web' is declared");
  EXPECT_EQ(errors[2], file + ":10:1: Server 'web': unknown field 'memroy' (did you mean 'memory'?)");
  EXPECT_EQ(errors[3], file + ":15:7: Network 'front': vlan: expected an integer 1..4094, got 5000");
  EXPECT_EQ(errors[4].rfind("loomctl: validate checks these files alone", 0), 0u) << errors[4];
}

// -f takes standard input (-) and a directory (its YAML files in name order; the fabric
// file beside them skipped, said on stderr).
TEST(LoomctlValidate, TakesStandardInputAndADirectory) {
  ProcessRun stdinRun = loomctl("validate -f - < " + kExamples + "/partitions.yaml");
  EXPECT_EQ(stdinRun.exitCode, 0) << stdinRun.err;
  EXPECT_EQ(stdinRun.out, "ok: 2 partitions, 0 networks, 0 identity pools, 0 pools, 0 servers\n");
  ProcessRun dir = loomctl("validate -f " + kExamples);
  EXPECT_EQ(dir.exitCode, 0) << dir.err;
  EXPECT_EQ(dir.out,
            "ok: 2 partitions, 3 networks, 2 identity pools, 4 pools, 17 servers (from 3 templates), 8 blades\n");
  EXPECT_EQ(dir.err, "loomctl: skipping " + kExamples + "/fabric.yaml: a fabric file, not declarations\n");
}

// A fabric file where declarations belong is said to be one; files that lean on objects
// applied before are pointed at apply --dry-run.
TEST(LoomctlValidate, SaysWhatAFabricFileIsAndWhereFilesThatNeedAppliedObjectsAreChecked) {
  ProcessRun fabric = loomctl("validate -f " + kExamples + "/fabric.yaml");
  EXPECT_EQ(fabric.exitCode, 1);
  EXPECT_NE(fabric.err.find("is a fabric file"), std::string::npos) << fabric.err;
  ProcessRun alone = loomctl("validate -f " + kExamples + "/servers.yaml");
  EXPECT_EQ(alone.exitCode, 1);
  EXPECT_NE(alone.err.find("run loomctl apply --dry-run -f"), std::string::npos) << alone.err;
}

TEST(LoomctlValidate, JsonOutputCarriesTheErrorsToo) {
  ProcessRun r = loomctl("-o json validate -f " + kData + "/bad-servers.yaml");
  EXPECT_EQ(r.exitCode, 1);
  auto json = nlohmann::json::parse(r.out);
  EXPECT_FALSE(json["ok"].get<bool>());
  EXPECT_EQ(json["errors"].size(), 4u);
  EXPECT_EQ(json["errors"][3]["line"], 15);
  EXPECT_EQ(json["errors"][3]["column"], 7);
}

TEST(LoomctlPlan, PlacesEveryExampleServerAndLeavesSparesAsJson) {
  ProcessRun r = loomctl("plan" + exampleDeclarations() + " --fabric " + kExamples + "/fabric.yaml -o json");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["servers"].size(), 17u);
  EXPECT_TRUE(json["unplaceable"].empty()) << json["unplaceable"].dump(2);
  EXPECT_TRUE(json["warnings"].empty()) << json["warnings"].dump(2);
  EXPECT_EQ(json["blades"].size(), 24u);
  std::map<std::string, int> sparesByPool;
  for (const auto& b : json["blades"]) {
    if (b["role"] == "spare") ++sparesByPool[b["pool"].get<std::string>()];
  }
  EXPECT_EQ(sparesByPool["web"], 1);
  EXPECT_EQ(sparesByPool["db"], 1);
  EXPECT_EQ(sparesByPool["global-spares"], 2);
  for (const auto& s : json["servers"]) {
    EXPECT_FALSE(s["blade"].get<std::string>().empty()) << s.dump();
    EXPECT_TRUE(s.contains("vcpus"));
    EXPECT_TRUE(s.contains("memory_mib"));
  }
}

TEST(LoomctlPlan, PrintsTablesForPeople) {
  ProcessRun r = loomctl("plan" + exampleDeclarations() + " --fabric " + kExamples + "/fabric.yaml");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.rfind("BLADE  ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nSERVER "), std::string::npos);
  EXPECT_NE(r.out.find("17 servers placed on"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << "no colour when NO_COLOR is set or output is piped";
}

TEST(LoomctlPlan, ExitsNonZeroAndGivesTheReasonWhenAServerIsUnplaceable) {
  ProcessRun r = loomctl("plan -f " + kData + "/too-big.yaml --fabric " + kExamples + "/fabric.yaml -o json");
  EXPECT_EQ(r.exitCode, 1);
  auto json = nlohmann::json::parse(r.out);
  ASSERT_EQ(json["unplaceable"].size(), 1u);
  EXPECT_EQ(json["unplaceable"][0]["name"], "huge");
  EXPECT_FALSE(json["unplaceable"][0]["reason"].get<std::string>().empty());
  EXPECT_NE(r.err.find("unplaceable"), std::string::npos);
}

TEST(LoomctlPlan, ReportsErrorsOfDeclarationsAndFabricTogether) {
  ProcessRun r = loomctl("plan -f " + kData + "/bad-servers.yaml --fabric " + kData + "/missing-fabric.yaml");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("bad-servers.yaml:10:1: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing-fabric.yaml: cannot read file"), std::string::npos) << r.err;
}

TEST(Loomctl, UnknownCommandIsAOneLineErrorWithASuggestion) {
  ProcessRun r = loomctl("valdate -f x.yaml");
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "loomctl: unknown command 'valdate' (did you mean 'validate'?) (run 'loomctl --help')\n");
}

// A usage error of a subcommand points at that subcommand's help, not the top one's.
TEST(Loomctl, AUsageErrorNamesTheSubcommandsHelp) {
  ProcessRun r = loomctl("--controller http://127.0.0.1:1 server move web-0");
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.err.find("--to is required"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(run 'loomctl server move --help')"), std::string::npos) << r.err;
  // An error the command finds itself (exit 2) does too.
  r = loomctl("--controller http://127.0.0.1:1 get widgets");
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.err.find("unknown kind 'widgets'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(run 'loomctl get --help')"), std::string::npos) << r.err;
}

// A positional's help names it once ("NAME  The server's name", not "NAME NAME").
TEST(Loomctl, HelpNamesAPositionalOnce) {
  ProcessRun r = loomctl("server show --help");
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.out.find("NAME NAME"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("NAME"), std::string::npos) << r.out;
}

TEST(Loomctl, HelpListsTheCommandsAndGlobalOptions) {
  ProcessRun r = loomctl("--help");
  EXPECT_EQ(r.exitCode, 0);
  for (const char* word : {"validate", "plan", "--controller", "--output"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word;
  }
}

}  // namespace
