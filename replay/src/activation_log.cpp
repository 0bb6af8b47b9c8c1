#include "activation_log.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "kmscope/environment.hpp"
#include "kmscope/status.hpp"

namespace kmscope::replay {

std::string result_kind(const server::ActivationRecord& rec) {
    if (rec.fault) return "fault";
    if (rec.hresult) return "hresult";
    return "ok";
}

ActivationLog::ActivationLog(const std::string& path, bool json, bool quiet) : json_(json), quiet_(quiet) {
    if (path.empty()) {
        out_ = stdout;
    } else {
        out_ = std::fopen(path.c_str(), "a");
        if (!out_) throw std::runtime_error(path + ": cannot open the log file");
        own_ = true;
    }
}

ActivationLog::~ActivationLog() {
    if (own_) std::fclose(out_);
}

std::string ActivationLog::reopen(const std::string& path, bool json, bool quiet) {
    std::FILE* next = stdout;
    if (!path.empty()) {
        next = std::fopen(path.c_str(), "a");
        if (!next) return path + ": cannot open the log file";
    }
    std::lock_guard lock(mu_);
    if (own_) std::fclose(out_);
    out_ = next;
    own_ = !path.empty();
    json_ = json;
    quiet_ = quiet;
    return "";
}

void ActivationLog::write(const std::string& line) {
    std::lock_guard lock(mu_);
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fputc('\n', out_);
    std::fflush(out_);
}

namespace {
std::string result_text(const server::ActivationRecord& rec) {
    // Built with append: GCC 12 at -O3 reports a false -Wrestrict through `"literal" + std::string`.
    auto refusal = [&](std::string_view kind, std::uint32_t code, std::string_view name) {
        std::string s(kind);
        s += ' ';
        s += hex32(code);
        if (!name.empty()) {
            s += ' ';
            s += name;
        }
        s += ": ";
        s += rec.reason;
        return s;
    };
    if (rec.fault) return refusal("FAULT", rec.fault, nca_status_name(rec.fault));
    if (rec.hresult) return refusal("HRESULT", rec.hresult, hresult_name(rec.hresult));
    return "ok";
}
}  // namespace

std::string ActivationLog::text_line(const std::string& client, const server::ActivationRecord& rec,
                                     const ProductTable& products) {
    std::string s = rec.time.to_iso8601() + "  " + client + "  call " + std::to_string(rec.call_id);
    if (rec.version) s += "  v" + rec.version->to_string();
    if (rec.request) {
        const auto& r = *rec.request;
        s += "  " + products.name_or_guid(r.sku_id) + "  [" + r.workstation() + ", " +
             std::string(license_status_name(r.license_status)) + "]  CMID " + r.cmid.to_string();
    }
    if (!rec.fault && !rec.hresult) s += "  count " + std::to_string(rec.count) + "  ePID " + rec.epid;
    return s + "  " + result_text(rec);
}

std::string ActivationLog::json_line(const std::string& client, const server::ActivationRecord& rec,
                                     const ProductTable& products) {
    // The shared JSON vocabulary (docs/json.md): kind, ts, version "6.0", HRESULTs as 0x + 8 hex digits.
    nlohmann::json j;
    j["kind"] = "activation";
    j["ts"] = rec.time.to_iso8601();
    j["client"] = client;
    j["call_id"] = rec.call_id;
    if (rec.version) j["version"] = rec.version->to_string();
    if (rec.request) {
        const auto& r = *rec.request;
        j["workstation"] = r.workstation();
        j["cmid"] = r.cmid.to_string();
        j["sku_id"] = r.sku_id.to_string();
        j["kms_id"] = r.kms_id.to_string();
        j["app_id"] = r.app_id.to_string();
        j["product"] = products.name_or_guid(r.sku_id);
        j["license_status"] = r.license_status;
        j["license_status_name"] = std::string(license_status_name(r.license_status));
        j["n_policy"] = r.n_policy;
    }
    j["result"] = result_kind(rec);
    if (rec.hresult) j["hresult"] = hex32(rec.hresult);
    if (rec.fault) j["fault"] = hex32(rec.fault);
    if (!rec.reason.empty()) j["reason"] = rec.reason;
    if (!rec.fault && !rec.hresult) {
        j["count"] = rec.count;
        j["epid"] = rec.epid;
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ActivationLog::activation(const std::string& client, const server::ActivationRecord& rec,
                               const ProductTable& products) {
    bool json, quiet;
    {
        std::lock_guard lock(mu_);  // reopen() may change them from another thread
        json = json_;
        quiet = quiet_;
    }
    if (quiet && !rec.fault && !rec.hresult) return;
    write(json ? json_line(client, rec, products) : text_line(client, rec, products));
}

void ActivationLog::event(const std::string& client, const std::string& what) {
    bool json;
    {
        std::lock_guard lock(mu_);
        json = json_;
    }
    if (json) {
        nlohmann::json j;
        j["kind"] = "event";
        j["ts"] = SystemClock().now().to_iso8601();
        j["client"] = client;
        j["message"] = what;
        write(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
        write(SystemClock().now().to_iso8601() + "  " + client + "  " + what);
    }
}

}  // namespace kmscope::replay
