// The one place loomctl speaks HTTP. Beast is slow to compile, so it stays behind this
// small interface in HttpClient.cpp; everything else sees status + body.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace loom::loomctl {

struct HttpReply {
  int status = 0;
  std::string body;
  // The replica headers of a loomd on etcd (X-Loom-Role, X-Loom-Replica, X-Loom-Leader,
  // X-Loom-Store-Revision, X-Loom-Copy-Age-Ms: controller/README.md, "Replicas"), by
  // lower-case name.
  std::map<std::string, std::string> headers;
};

// The API token every request sends (Authorization: Bearer TOKEN; empty: none), set once
// the options are parsed (Credentials.h).
void setBearerToken(std::string token);

// The CA certificate file (PEM) that https:// controllers' certificates must chain to,
// from now on; empty: the system's CAs. The certificate must also name the URL's host
// (DNS name or IP address). loomctl sets it from --ca / LOOM_CA before a command runs.
void trustCertificateAuthority(const std::string& caFile);

// One request on a fresh connection (a CLI sends a handful; keep-alive buys nothing).
// `controller` is "http://host:port" or "https://host:port"; `timeout` bounds the whole
// exchange (connect, TLS handshake, request, answer). Throws CommandError "cannot reach the controller
// at URL: REASON" when the connection or exchange fails, so every command reports an
// unreachable controller the same way; any HTTP status is returned, not thrown. An https
// controller whose certificate is refused throws "refusing the controller at URL: its TLS
// certificate is not for 'HOST' (it names ...)" or "... is not signed by the CA in 'FILE'".
HttpReply httpCall(const std::string& controller, const std::string& method, const std::string& target,
                   const std::string& body, const std::string& contentType, std::chrono::seconds timeout);

// The same against `controllers`: one URL, or the replicas of a fabric on etcd,
// comma-separated ("http://a:7780,http://b:7780"). The request goes to the replica that
// answered last in this process (the first at start); one that cannot be reached is
// passed over for the next; a standby answers 503 naming the leader (controller/README,
// "Replicas"), and the request is made once more there. Throws as httpCall when no
// replica answers, naming each and why. A read a standby answered from its warm copy is
// said in one line on stderr (which replica, the copy's etcd revision, how long since it
// was last known current, the leader); stdout is the answer alone, as from the leader.
HttpReply controllerCall(const std::string& controllers, const std::string& method, const std::string& target,
                         const std::string& body, const std::string& contentType, std::chrono::seconds timeout);

}  // namespace loom::loomctl
