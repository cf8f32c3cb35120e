#include "controller/FenceRunner.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>

namespace loom::controller {
namespace {

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The last non-empty line of the output, shortened: enough to say why a BMC refused.
std::string lastLine(const std::string& out) {
  std::size_t end = out.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  std::size_t begin = out.rfind('\n', end);
  std::string line =
      out.substr(begin == std::string::npos ? 0 : begin + 1, end + 1 - (begin == std::string::npos ? 0 : begin + 1));
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  // It goes into events and `blade show` (JSON): whatever the command printed, ASCII.
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return line;
}

}  // namespace

FenceRunner::~FenceRunner() {
  stopping_ = true;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads)
    if (t.joinable()) t.join();
}

void FenceRunner::run(const std::string& command, Done done) {
  std::lock_guard lock(mu_);
  threads_.emplace_back([this, command, done = std::move(done)] {
    const std::int64_t start = nowMs();
    int pipeFds[2];
    if (pipe2(pipeFds, O_CLOEXEC) != 0)
      return done(false, std::string("cannot create a pipe: ") + std::strerror(errno));
    const pid_t pid = fork();
    if (pid < 0) {
      close(pipeFds[0]);
      close(pipeFds[1]);
      return done(false, std::string("cannot fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
      setpgid(0, 0);
      // loomd's threads block SIGHUP (its reloader takes it): the command starts with none.
      sigset_t none;
      sigemptyset(&none);
      pthread_sigmask(SIG_SETMASK, &none, nullptr);
      const int devNull = open("/dev/null", O_RDONLY);
      if (devNull >= 0) dup2(devNull, 0);
      dup2(pipeFds[1], 1);
      dup2(pipeFds[1], 2);
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    setpgid(pid, pid);  // also from here: no race with the child's own call
    close(pipeFds[1]);
    std::string out;
    bool timedOut = false;
    for (;;) {
      const std::int64_t left = timeoutMs_ - (nowMs() - start);
      if (left <= 0 || stopping_) {
        timedOut = true;
        break;
      }
      pollfd p{pipeFds[0], POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left, 200)));
      if (r < 0 && errno != EINTR) break;
      if (r <= 0) continue;
      char buf[4096];
      const ssize_t n = read(pipeFds[0], buf, sizeof buf);
      if (n <= 0) break;  // EOF: the command (and whatever it started) closed its output
      out.append(buf, static_cast<std::size_t>(n));
      if (out.size() > 65536) out.erase(0, out.size() - 4096);
    }
    close(pipeFds[0]);
    if (timedOut) kill(-pid, SIGKILL);
    int status = 0;
    // The output closed; the command itself may still be finishing: wait, bounded.
    while (waitpid(pid, &status, timedOut ? 0 : WNOHANG) == 0) {
      if (nowMs() - start > timeoutMs_ || stopping_) {
        kill(-pid, SIGKILL);
        timedOut = true;
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::int64_t took = nowMs() - start;
    const std::string tail = lastLine(out);
    if (timedOut)
      return done(false, stopping_ ? "loomd is stopping; command killed"
                                   : "killed after the " + std::to_string(timeoutMs_) + " ms timeout");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
      return done(true, "exit 0 in " + std::to_string(took) + " ms" + (tail.empty() ? "" : ": " + tail));
    if (WIFEXITED(status))
      return done(false, "exit " + std::to_string(WEXITSTATUS(status)) + (tail.empty() ? "" : ": " + tail));
    return done(false, "killed by signal " + std::to_string(WTERMSIG(status)) + (tail.empty() ? "" : ": " + tail));
  });
}

}  // namespace loom::controller
