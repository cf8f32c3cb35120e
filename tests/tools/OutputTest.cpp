#include <gtest/gtest.h>

#include <sstream>

#include "tools/loomctl/Output.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {
namespace {

TEST(Table, AlignsColumnsOnThePlainTextEvenWithColour) {
  Table table({{"blade"}, {"cores", Table::Align::Right}, {"state"}});
  table.addRow({"c1-s1", "16", Cell("active", Style::Good)});
  table.addRow({"c1-s10", "8", Cell("failed", Style::Bad)});
  std::ostringstream plain;
  table.render(plain, false);
  EXPECT_EQ(plain.str(),
            "BLADE   CORES  STATE\n"
            "c1-s1      16  active\n"
            "c1-s10      8  failed\n");
  std::ostringstream coloured;
  table.render(coloured, true);
  EXPECT_NE(coloured.str().find("\033[32mactive\033[0m"), std::string::npos);
  EXPECT_NE(coloured.str().find("c1-s10      8  "), std::string::npos);
}

TEST(Table, ShortRowsArePadded) {
  Table table({{"a"}, {"b"}});
  table.addRow({"x"});
  std::ostringstream out;
  table.render(out, false);
  EXPECT_EQ(out.str(), "A  B\nx\n");
}

TEST(Yaml, EmitsBlockStyleAndQuotesWhatYamlWouldMisread) {
  Json value = {{"name", "web-0"},
                {"power", "on"},
                {"version", "1.10"},
                {"empty", ""},
                {"note", "a: b"},
                {"vcpus", 4},
                {"dedicated", false},
                {"macs", {"52:54:00:10:00:01"}},
                {"nics", Json::array({{{"network", "front"}, {"vlan", 100}}})},
                {"none", Json::array()},
                {"path", "/var/lib/loom/x.qcow2"}};
  EXPECT_EQ(toYaml(value),
            "name: web-0\n"
            "power: \"on\"\n"
            "version: \"1.10\"\n"
            "empty: \"\"\n"
            "note: \"a: b\"\n"
            "vcpus: 4\n"
            "dedicated: false\n"
            "macs:\n"
            "  - \"52:54:00:10:00:01\"\n"
            "nics:\n"
            "  - network: front\n"
            "    vlan: 100\n"
            "none: []\n"
            "path: /var/lib/loom/x.qcow2\n");
}

TEST(Style, StatesGetTheColoursOperatorsExpect) {
  EXPECT_EQ(styleForState("running"), Style::Good);
  EXPECT_EQ(styleForState("spare"), Style::Notice);
  EXPECT_EQ(styleForState("suspect"), Style::Warning);
  EXPECT_EQ(styleForState("failed"), Style::Bad);
  EXPECT_EQ(styleForState("whatever"), Style::Plain);
  EXPECT_EQ(styled("x", Style::Bad, false), "x");
}

TEST(Output, CountsReadAsEnglish) {
  EXPECT_EQ(countOf(1, "identity pool", "identity pools"), "1 identity pool");
  EXPECT_EQ(countOf(3, "pool", "pools"), "3 pools");
}

}  // namespace
}  // namespace loom::loomctl

namespace loom::loomctl {
namespace {

// The tables an operator reads (issue 18): a blade that can run either hypervisor says
// so, a spare pool shows its spare blades, `show` lays NICs and disks out one a line.
TEST(Views, ADualHypervisorBladeShowsBoth) {
  std::ostringstream out;
  Context context;
  context.out = &out;
  bladeTable(context, Json::array({Json{{"name", "c2-s1"}, {"hypervisor", "xen"}, {"hypervisors", {"kvm", "xen"}}},
                                   Json{{"name", "c1-s1"}, {"hypervisor", "kvm"}, {"hypervisors", {"kvm"}}}}));
  const std::string text = out.str();
  const std::string dual = text.substr(text.find("c2-s1"), text.find('\n', text.find("c2-s1")) - text.find("c2-s1"));
  const std::string single = text.substr(text.find("c1-s1"), text.find('\n', text.find("c1-s1")) - text.find("c1-s1"));
  EXPECT_NE(dual.find(" xen,kvm "), std::string::npos) << text;
  EXPECT_NE(single.find(" kvm "), std::string::npos) << text;
  EXPECT_EQ(single.find("xen"), std::string::npos) << text;
}

TEST(Views, ASparePoolShowsItsSpareBlades) {
  std::ostringstream out;
  Context context;
  context.out = &out;
  poolTable(context, Json::array({Json{{"name", "global-spares"},
                                       {"spare_pool", true},
                                       {"spares", 0},
                                       {"spare_blades", {"c2-s7", "c2-s8"}},
                                       {"blades", {"c2-s7", "c2-s8"}}}}));
  EXPECT_NE(out.str().find("2 (spare pool)"), std::string::npos) << out.str();
}

TEST(Views, ShowPutsEachNicAndDiskOnALine) {
  std::ostringstream out;
  Context context;
  context.out = &out;
  printBlock(context, Json{{"name", "db-01"},
                           {"nics", {Json{{"network", "back"}, {"mac", "52:54:00:10:ff:01"}}}},
                           {"disks",
                            {Json{{"image", "/i/db.qcow2"}, {"format", nullptr}, {"readonly", false}},
                             Json{{"image", "/d.raw"}, {"format", "raw"}, {"readonly", true}}}}});
  EXPECT_NE(out.str().find("network=back mac=52:54:00:10:ff:01\n"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("image=/i/db.qcow2\n"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("image=/d.raw format=raw readonly=true\n"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace loom::loomctl
