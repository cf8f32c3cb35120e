// loomd's API transport with TLS (controller/HttpServer.h) and `loomd keygen --tls`
// (controller/TlsKeygen.h): a bad pair stops loomd with the file and the reason named; a
// good one serves HTTPS, and plain HTTP to it gets one plain answer that says so.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "controller/HttpServer.h"
#include "controller/TlsKeygen.h"

namespace loom::controller {
namespace {

class HttpServerTls : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("loom-https-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  TlsPairPaths pair(const std::string& host) {
    auto p = writeSelfSignedTlsPair(dir_.string(), host);
    EXPECT_TRUE(p) << (p ? "" : p.error().message);
    return p ? *p : TlsPairPaths{};
  }
  std::string file(const std::string& name, const std::string& text) {
    std::filesystem::create_directories(dir_);
    const auto path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  // What listen() says of this pair ("" when it serves).
  static std::string listenError(const TlsFiles& files) {
    HttpServer http(
        "127.0.0.1", 0, [](const ApiRequest&, const HttpServer::Done&) {}, files);
    auto port = http.listen();
    return port ? "" : port.error().message;
  }

  std::filesystem::path dir_;
};

TEST_F(HttpServerTls, AMissingCertificateIsRefusedNamingTheFile) {
  const auto lab = pair("lab1");
  const std::string why = listenError({(dir_ / "nope.crt").string(), lab.keyFile});
  EXPECT_NE(why.find("--api-tls-cert"), std::string::npos) << why;
  EXPECT_NE(why.find("nope.crt"), std::string::npos) << why;
  EXPECT_NE(why.find("No such file or directory"), std::string::npos) << why;
}

TEST_F(HttpServerTls, AFileThatIsNotPemIsRefused) {
  const auto lab = pair("lab1");
  const auto garbage = file("garbage.pem", "not a certificate\n");
  std::string why = listenError({garbage, lab.keyFile});
  EXPECT_NE(why.find("'" + garbage + "': not a PEM certificate chain (no start line)"), std::string::npos) << why;
  why = listenError({lab.certFile, garbage});
  EXPECT_NE(why.find("--api-tls-key"), std::string::npos) << why;
  EXPECT_NE(why.find("not an unencrypted PEM private key"), std::string::npos) << why;
}

TEST_F(HttpServerTls, AKeyOfAnotherPairIsRefused) {
  const auto lab1 = pair("lab1");
  const auto lab2 = pair("lab2");
  const std::string why = listenError({lab1.certFile, lab2.keyFile});
  EXPECT_NE(why.find("'" + lab2.keyFile + "': does not match the certificate in '" + lab1.certFile + "'"),
            std::string::npos)
      << why;
  EXPECT_EQ(HttpServer::checkTls({lab1.certFile, lab2.keyFile}).error().message, why);
  EXPECT_TRUE(HttpServer::checkTls({lab1.certFile, lab1.keyFile}));
}

TEST_F(HttpServerTls, KeygenWritesAPrivateKeyAndRefusesToOverwriteIt) {
  const auto lab = pair("lab1.example.org");
  struct stat st {};
  ASSERT_EQ(::stat(lab.keyFile.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(lab.summary.find("DNS:lab1.example.org,IP:127.0.0.1"), std::string::npos) << lab.summary;
  auto again = writeSelfSignedTlsPair(dir_.string(), "lab1.example.org");
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("not overwriting"), std::string::npos);
  auto bad = writeSelfSignedTlsPair(dir_.string(), "lab 1;rm");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("neither a DNS host name nor an IP address"), std::string::npos);
  EXPECT_TRUE(writeSelfSignedTlsPair(dir_.string(), "10.1.2.3"));
}

// One plain-HTTP exchange on a raw socket: what came back before the server hung up.
std::string plainExchange(unsigned short port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "(connect failed)";
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)!::write(fd, request.data(), request.size());
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

TEST_F(HttpServerTls, PlainHttpToTheHttpsPortGetsOnePlainRefusal) {
  const auto lab = pair("lab1");
  bool handled = false;
  HttpServer http(
      "127.0.0.1", 0,
      [&handled](const ApiRequest&, const HttpServer::Done& done) {
        handled = true;
        done(ApiResponse{200, "application/json", "{}\n"});
      },
      TlsFiles{lab.certFile, lab.keyFile});
  auto port = http.listen();
  ASSERT_TRUE(port) << port.error().message;
  EXPECT_EQ(http.scheme(), "https");
  EXPECT_NE(http.certificateSummary().find("DNS:lab1, IP:127.0.0.1"), std::string::npos) << http.certificateSummary();
  std::thread io([&http] { http.run(); });
  const std::string answer = plainExchange(*port, "GET /v1/blades HTTP/1.1\r\nHost: x\r\n\r\n");
  http.stop();
  io.join();
  EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("speaks HTTPS only: use an https:// URL"), std::string::npos) << answer;
  EXPECT_FALSE(handled) << "a plain request reached the API";
}

double cpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Out of descriptors, accept() fails at once every time: the HTTP thread must wait, not
// spin, and serve again once descriptors are free.
TEST(HttpServer, OutOfDescriptorsItWaitsInsteadOfSpinningAndServesAgain) {
  HttpServer http("127.0.0.1", 0, [](const ApiRequest&, const HttpServer::Done& done) {
    done(ApiResponse{200, "application/json", "{}\n"});
  });
  auto port = http.listen();
  ASSERT_TRUE(port) << port.error().message;
  std::thread io([&http] { http.run(); });
  rlimit old{};
  ::getrlimit(RLIMIT_NOFILE, &old);
  std::size_t open = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) open += e.is_symlink() ? 1 : 0;
  rlimit low = old;
  low.rlim_cur = open + 8;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> clients;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(*port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 64; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;  // the process is out of descriptors: so is the server's accept()
    clients.push_back(fd);
    (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const double before = cpuSeconds();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double spent = cpuSeconds() - before;
  for (int fd : clients) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  EXPECT_LT(spent, 0.3) << "the HTTP thread spun on accept() for " << spent << " s of CPU in 1 s";
  const std::string answer = plainExchange(*port, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
  http.stop();
  io.join();
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
}

TEST_F(HttpServerTls, ReloadKeepsThePairInUseWhenTheNewOneIsBad) {
  const auto lab = pair("lab1");
  const auto lab2 = pair("lab2");
  const auto cert = file("served.crt", "");
  const auto key = file("served.key", "");
  std::filesystem::copy_file(lab.certFile, cert, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(lab.keyFile, key, std::filesystem::copy_options::overwrite_existing);
  HttpServer http(
      "127.0.0.1", 0, [](const ApiRequest&, const HttpServer::Done&) {}, TlsFiles{cert, key});
  ASSERT_TRUE(http.listen());
  // Half a rotation (the new certificate, the old key): refused, the old pair stays.
  std::filesystem::copy_file(lab2.certFile, cert, std::filesystem::copy_options::overwrite_existing);
  auto s = http.reloadTls();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("does not match"), std::string::npos) << s.error().message;
  EXPECT_NE(http.certificateSummary().find("DNS:lab1,"), std::string::npos) << http.certificateSummary();
  // The whole rotation: served from now on.
  std::filesystem::copy_file(lab2.keyFile, key, std::filesystem::copy_options::overwrite_existing);
  ASSERT_TRUE(http.reloadTls());
  EXPECT_NE(http.certificateSummary().find("DNS:lab2,"), std::string::npos) << http.certificateSummary();
}

}  // namespace
}  // namespace loom::controller
