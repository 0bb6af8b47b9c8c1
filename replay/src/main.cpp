// kms-replay: serve (a KMS host), check (a capture against the same server path, offline), send
// (recorded sessions against a live server; load generator) and status (the host's CMID table).
#include <CLI/CLI.hpp>
#include <iostream>

#include "check.hpp"
#include "kmscope/version.hpp"
#include "options.hpp"
#include "send.hpp"
#include "serve.hpp"
#include "status.hpp"

using namespace kmscope::replay;

int main(int argc, char** argv) {
    CLI::App app{"kms-replay: KMS host, offline capture check and live replay on the kmscope core"};
    app.set_version_flag("--version,-V", std::string("kms-replay (kmscope) ") + kmscope::version);
    app.require_subcommand(1);

    // serve
    auto* serve = app.add_subcommand("serve", "Answer KMS clients as a KMS host does");
    ServeOptions cli;
    std::string config;
    serve->add_option("-c,--config", config, "INI file carrying any option below ([server], [epid], [hwid])");
    serve->add_option("-l,--listen", cli.listen, "ADDR:PORT to listen on (repeatable; default dual-stack [::]:1688)");
    serve->add_option("--port", cli.port, "Port for --listen addresses without one")->capture_default_str();
    serve->add_option("--threads", cli.threads, "Event-loop threads")->capture_default_str();
    auto* daemon_flag = serve->add_flag("--daemon", cli.daemon, "Detach from the terminal (double fork, setsid)");
    serve->add_flag("--foreground", cli.foreground, "Stay in the foreground: the default (kept for old scripts)")
        ->excludes(daemon_flag);
    serve->add_option("--state-dir", cli.state_dir,
                      "Folder of the generated host identity (default: $STATE_DIRECTORY, /var/lib/kms-replay as "
                      "root, else $XDG_STATE_HOME/kms-replay or ~/.local/state/kms-replay)");
    serve->add_option("--pid-file", cli.pid_file, "Write the process id here");
    serve->add_option("--ready-file", cli.ready_file, "Write the bound addresses here once listening");
    serve->add_option("--ndr64", cli.ndr64, "Accept NDR64 (true/false)")->capture_default_str();
    serve->add_option("--btfn", cli.btfn, "Answer bind-time feature negotiation (true/false)")->capture_default_str();
    serve->add_option("--host-build", cli.host_build, "Host OS build in generated ePIDs")->capture_default_str();
    serve->add_option("--lcid", cli.lcid, "LCID in generated ePIDs")->capture_default_str();
    serve->add_option("--activation-interval", cli.activation_interval, "Minutes")->capture_default_str();
    serve->add_option("--renewal-interval", cli.renewal_interval, "Minutes")->capture_default_str();
    serve->add_option("--hwid", cli.hwid, "Default HwId (16 hex digits; default: the installation's generated one)");
    std::vector<std::string> epids, hwids;
    serve->add_option("--epid", epids, "FAMILY=EPID, e.g. Windows=03612-00206-...-2772022 (repeatable)");
    serve->add_option("--family-hwid", hwids, "FAMILY=HWID (repeatable)");
    serve->add_option("--from", cli.from,
                      "Capture whose recorded server identity (ePID, HwId, counts, intervals) to take");
    serve->add_option("--max-n-policy", cli.max_n_policy, "Refuse larger N policies with 0x8007000D")
        ->capture_default_str();
    serve->add_option("--max-time-skew", cli.max_time_skew,
                      "Refuse clients whose clock is off by more seconds (0: off)");
    serve->add_option("--strict-opnum", cli.strict_opnum, "Fault opnums other than 0 (true/false)")
        ->capture_default_str();
    serve->add_option("--count-policy", cli.count_policy, "fixed or genuine")->capture_default_str();
    serve->add_option("--fixed-count", cli.fixed_count, "Count for the fixed policy (0: twice the N policy)");
    serve->add_option("--db", cli.db, "SQLite database: CMID table (genuine) and request statistics");
    serve->add_option("--db-sync", cli.db_sync, "full (survives power loss) or normal (survives crashes)")
        ->capture_default_str();
    serve->add_option("--idle-timeout", cli.idle_timeout, "Seconds without a complete PDU before closing")
        ->capture_default_str();
    serve->add_option("--max-connections", cli.max_connections, "Open connections")->capture_default_str();
    serve->add_option("--max-pdu-size", cli.max_pdu_size, "Largest accepted frag_length")->capture_default_str();
    serve->add_option("--max-requests-per-connection", cli.max_requests_per_connection, "0: unlimited")
        ->capture_default_str();
    serve
        ->add_option("--max-binds-per-connection", cli.max_binds_per_connection,
                     "Binds and alter_contexts per connection; 0: unlimited")
        ->capture_default_str();
    serve
        ->add_option("--max-connection-age", cli.max_connection_age,
                     "Seconds a connection may stay open, however busy; 0: unlimited")
        ->capture_default_str();
    serve->add_option("--allow", cli.allow, "Client network allowed (CIDR, repeatable; default everyone)");
    serve->add_option("--log-format", cli.log_format, "text or json")->capture_default_str();
    serve->add_option("--log-file", cli.log_file, "Activation log file (default standard output)");
    serve->add_flag("--quiet", cli.quiet, "Log refusals and events only, not successful activations");

    // check
    auto* check = app.add_subcommand("check", "Push every recorded request through the server path and compare");
    std::vector<std::string> check_caps;
    bool check_json = false;
    check->add_option("captures", check_caps, "pcap / pcapng files")->required()->check(CLI::ExistingFile);
    check->add_flag("--json", check_json, "JSON lines");

    // send
    auto* send = app.add_subcommand("send", "Replay recorded connections against a live server and verify the answers");
    SendOptions so;
    send->add_option("captures", so.captures, "pcap / pcapng files")->required()->check(CLI::ExistingFile);
    send->add_option("-t,--to", so.to, "HOST:PORT of the server")->required();
    send->add_option("--concurrency", so.concurrency, "Connections in flight")->capture_default_str();
    send->add_option("--repeat", so.repeat, "Replays of every recorded connection")->capture_default_str();
    send->add_option("--duration", so.duration, "Seconds to run (replaces --repeat)");
    send->add_option("--rate", so.rate, "Connections per second in total (default: as fast as possible)");
    send->add_option("--timeout", so.timeout, "Seconds to wait for each answer")->capture_default_str();
    send->add_flag("--vary-cmid", so.vary_cmid, "A fresh random CMID and IV in every request");
    send->add_option("--ack-file", so.ack_file,
                     "Append the CMID of every request the server answered with a KMS response (with --vary-cmid)");
    send->add_flag("--json", so.json, "JSON lines");
    send->add_flag("--quiet", so.quiet, "Summary only");

    // status
    auto* status = app.add_subcommand("status", "The host's view of its database (slmgr /dlv style)");
    std::string db;
    bool status_json = false, list_cmids = false;
    status->add_option("--db", db, "SQLite database of serve")->required();
    status->add_flag("--json", status_json, "JSON");
    status->add_flag("--cmids", list_cmids, "List every stored CMID");

    // Exit codes as kms-analyze's: 0 success (and --help, --version), 1 mismatches, 2 usage and input
    // errors. CLI11's own codes (105-109 and more) never leave the program.
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;  // app.exit prints help to stdout, errors to stderr
    }

    if (*serve) {
        // The INI file, then the options given on the command line over it: at start and on SIGHUP.
        auto read_options = [&](ServeOptions& opts) -> std::string {
            opts = ServeOptions{};
            if (!config.empty()) {
                auto err = load_ini(config, opts);
                if (!err.empty()) return err;
            }
            // Options given on the command line override the INI file.
            auto given = [&](const char* name) { return serve->count(name) > 0; };
#define KMS_OVERRIDE(flag, field) \
    if (given(flag)) opts.field = cli.field
            KMS_OVERRIDE("--listen", listen);
            KMS_OVERRIDE("--port", port);
            KMS_OVERRIDE("--threads", threads);
            KMS_OVERRIDE("--foreground", foreground);
            KMS_OVERRIDE("--daemon", daemon);
            KMS_OVERRIDE("--state-dir", state_dir);
            KMS_OVERRIDE("--pid-file", pid_file);
            KMS_OVERRIDE("--ready-file", ready_file);
            KMS_OVERRIDE("--ndr64", ndr64);
            KMS_OVERRIDE("--btfn", btfn);
            KMS_OVERRIDE("--host-build", host_build);
            KMS_OVERRIDE("--lcid", lcid);
            KMS_OVERRIDE("--activation-interval", activation_interval);
            KMS_OVERRIDE("--renewal-interval", renewal_interval);
            KMS_OVERRIDE("--hwid", hwid);
            KMS_OVERRIDE("--from", from);
            KMS_OVERRIDE("--max-n-policy", max_n_policy);
            KMS_OVERRIDE("--max-time-skew", max_time_skew);
            KMS_OVERRIDE("--strict-opnum", strict_opnum);
            KMS_OVERRIDE("--count-policy", count_policy);
            KMS_OVERRIDE("--fixed-count", fixed_count);
            KMS_OVERRIDE("--db", db);
            KMS_OVERRIDE("--db-sync", db_sync);
            KMS_OVERRIDE("--idle-timeout", idle_timeout);
            KMS_OVERRIDE("--max-connections", max_connections);
            KMS_OVERRIDE("--max-pdu-size", max_pdu_size);
            KMS_OVERRIDE("--max-requests-per-connection", max_requests_per_connection);
            KMS_OVERRIDE("--max-binds-per-connection", max_binds_per_connection);
            KMS_OVERRIDE("--max-connection-age", max_connection_age);
            KMS_OVERRIDE("--allow", allow);
            KMS_OVERRIDE("--log-format", log_format);
            KMS_OVERRIDE("--log-file", log_file);
            KMS_OVERRIDE("--quiet", quiet);
#undef KMS_OVERRIDE
            for (const auto& [list, target] : {std::pair{&epids, &opts.epid}, std::pair{&hwids, &opts.family_hwid}}) {
                for (const auto& kv : *list) {
                    auto eq = kv.find('=');
                    if (eq == std::string::npos) return "expected FAMILY=VALUE, got '" + kv + "'";
                    (*target)[kv.substr(0, eq)] = kv.substr(eq + 1);
                }
            }
            return "";
        };
        ServeOptions opts;
        if (auto err = read_options(opts); !err.empty()) {
            std::cerr << "kms-replay: " << err << "\n";
            return 2;
        }
        return run_serve(opts, read_options);
    }
    if (*check) {
        auto sum = run_check(check_caps, std::cout, std::cerr, check_json);
        if (sum.errors) return 2;  // a capture that cannot be read is an input error
        return sum.ok() ? 0 : 1;
    }
    if (*send) return run_send(so, std::cout, std::cerr);
    if (*status) return run_status(db, status_json, list_cmids, std::cout, std::cerr);
    return 2;
}
