// loomd's command line: the options, and what is derived from them before anything starts
// (the timing rules, the fabric's keys, the API's address and TLS pair). main.cpp runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "controller/ControllerLoop.h"
#include "controller/ControllerOptions.h"
#include "controller/HttpServer.h"
#include "loom/Result.h"

namespace loom::loomd {

struct CommandLine {
  std::string statePath = "loomd.db";
  std::string store;  // etcd://...; empty: --state
  std::string agents = "tcp://127.0.0.1:7700";
  std::string api = "127.0.0.1:7780";
  std::string keyPath, allowPath, relaysPath, logLevel = "info";
  std::string tlsCert, tlsKey;  // --api-tls-cert/--api-tls-key: HTTPS
  bool insecure = false;
  int recoveryNice = 10;
  controller::ControllerOptions opts;
  // Replicas.
  std::string name;       // default: the host name
  std::string advertise;  // default: http://API
  std::int64_t leaderTtlS = 1;
  std::string adminTokenFile;  // default: beside --state; with --store, ./admin.token
};

// Every option of loomd's command line, bound to `cl`.
void addOptions(CLI::App& app, CommandLine& cl);
// The timing rules the agents and the outage rule need; an empty string when they hold.
std::string checkTimings(const controller::ControllerOptions& opts);
// The fabric's options, with CurveZMQ's keys read; an error names the file.
Result<controller::FabricOptions> fabricOptions(const CommandLine& cl);
// The API's TLS pair, if both files are given.
Result<std::optional<controller::TlsFiles>> tlsFiles(const CommandLine& cl);

struct ApiAddress {
  std::string host;
  unsigned short port = 0;
};

// "HOST:PORT" of --api.
Result<ApiAddress> parseApi(const std::string& api);

}  // namespace loom::loomd
