#include "status.hpp"

#include <sys/stat.h>

#include <map>
#include <nlohmann/json.hpp>
#include <ostream>

#include "cmid_store.hpp"
#include "kmscope/products.hpp"

namespace kmscope::replay {

int run_status(const std::string& path, bool json, bool list_cmids, std::ostream& out, std::ostream& err) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        err << "kms-replay status: " << path << ": no such database\n";
        return 2;
    }
    try {
        // Read-only: status never creates or changes a database (an empty or foreign file stays as it is).
        SqliteCmidStore db(path, SyncMode::Full, true);
        if (auto missing = db.missing_tables(); !missing.empty()) {
            err << "kms-replay status: " << path << ": not a kms-replay database (no table " << missing
                << "); give the --db file of kms-replay serve\n";
            return 2;
        }
        const auto& products = ProductTable::builtin();
        auto now = SystemClock().now();
        auto counts = db.counts(now);
        auto stats = db.request_stats();
        if (json) {
            nlohmann::json j;
            j["kms_ids"] = nlohmann::json::array();
            for (const auto& c : counts) {
                auto g = Guid::parse(c.kms_id);
                j["kms_ids"].push_back({{"kms_id", c.kms_id},
                                        {"name", g ? products.name_or_guid(*g) : c.kms_id},
                                        {"distinct_cmids_30d", c.distinct_cmids},
                                        {"last_count", c.last_count},
                                        {"last_n_policy", c.last_n_policy},
                                        {"last_time_unix", c.last_time_unix}});
            }
            j["requests"] = nlohmann::json::array();
            for (const auto& s : stats)
                j["requests"].push_back({{"kms_id", s.kms_id},
                                         {"license_status", s.license_status},
                                         {"license_status_name", std::string(license_status_name(s.license_status))},
                                         {"result", s.result},
                                         {"n", s.n}});
            if (list_cmids) {
                j["cmids"] = nlohmann::json::array();
                for (const auto& [k, c] : db.cmids()) j["cmids"].push_back({{"kms_id", k}, {"cmid", c}});
            }
            out << j.dump(2) << "\n";
            return 0;
        }
        out << "Key Management Service host status (" << path << ")\n\n";
        for (const auto& c : counts) {
            auto g = Guid::parse(c.kms_id);
            out << "KMS ID " << c.kms_id << " (" << (g ? products.name_or_guid(*g) : c.kms_id) << ")\n";
            out << "    Current count: " << c.distinct_cmids << " distinct client machine IDs in the last 30 days\n";
            if (c.last_time_unix)
                out << "    Last reported count: " << c.last_count << " (to a client with N policy " << c.last_n_policy
                    << ")\n";
        }
        std::map<std::uint32_t, std::uint64_t> by_status;
        std::uint64_t total = 0, failed = 0;
        for (const auto& s : stats) {
            total += s.n;
            if (s.result == "ok")
                by_status[s.license_status] += s.n;
            else
                failed += s.n;
        }
        out << "\nTotal requests received: " << total << "\n";
        out << "Failed requests received: " << failed << "\n";
        for (const auto& [ls, n] : by_status)
            out << "Requests with License Status " << license_status_name(ls) << ": " << n << "\n";
        if (list_cmids) {
            out << "\nCMIDs:\n";
            for (const auto& [k, c] : db.cmids()) out << k << " " << c << "\n";
        }
    } catch (const std::exception& e) {
        err << "kms-replay status: " << path << ": " << e.what() << "\n";
        return 2;
    }
    return 0;
}

}  // namespace kmscope::replay
