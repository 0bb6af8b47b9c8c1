// The activation log: one line per answered or refused request (text or JSON lines), plus one line
// per connection-level event (refusals, closes, malformed PDUs). Thread-safe.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "kmscope/products.hpp"
#include "kmscope/server.hpp"

namespace kmscope::replay {

class ActivationLog {
public:
    /// Writes to `path` (appending) or to standard output when empty; `json` selects JSON lines.
    ActivationLog(const std::string& path, bool json, bool quiet = false);
    ~ActivationLog();
    ActivationLog(const ActivationLog&) = delete;
    ActivationLog& operator=(const ActivationLog&) = delete;
    /// One activation (answered or refused) from `client`.
    void activation(const std::string& client, const server::ActivationRecord& rec, const ProductTable& products);
    /// Opens `path` again (or another path; standard output when empty) and takes the new format and
    /// quiet flag: SIGHUP after logrotate renamed the file. On failure the current file stays and the
    /// error sentence is returned; "" on success.
    std::string reopen(const std::string& path, bool json, bool quiet);
    /// A connection-level event (accepted/refused/closed/malformed) with its reason.
    void event(const std::string& client, const std::string& what);
    /// The text of an activation line (without newline), as written in text mode.
    static std::string text_line(const std::string& client, const server::ActivationRecord& rec,
                                 const ProductTable& products);
    /// The JSON object of an activation line.
    static std::string json_line(const std::string& client, const server::ActivationRecord& rec,
                                 const ProductTable& products);

private:
    void write(const std::string& line);
    std::mutex mu_;
    std::FILE* out_ = nullptr;
    bool own_ = false;
    bool json_ = false;
    bool quiet_ = false;
};

/// "ok", "hresult" or "fault".
std::string result_kind(const server::ActivationRecord& rec);

}  // namespace kmscope::replay
