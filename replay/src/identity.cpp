#include "identity.hpp"

#include <fcntl.h>
#include <glib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace kmscope::replay {

namespace {

std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

bool write_all(int fd, const std::string& text) {
    std::size_t off = 0;
    while (off < text.size()) {
        ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}
}  // namespace

std::string default_state_dir() {
    // systemd's StateDirectory= exports the absolute paths, separated by ':' when there are several.
    std::string sd = env_or_empty("STATE_DIRECTORY");
    if (!sd.empty()) return sd.substr(0, sd.find(':'));
    if (geteuid() == 0) return "/var/lib/kms-replay";
    // XDG base directories: $XDG_STATE_HOME when absolute, else ~/.local/state. Built with append: GCC 12
    // at -O3 reports a false -Wrestrict through `std::string + "literal"` and literal assignment.
    const std::string xdg = env_or_empty("XDG_STATE_HOME");
    const std::string home = env_or_empty("HOME");
    std::string dir;
    if (!xdg.empty() && xdg[0] == '/') {
        dir.append(xdg);
    } else {
        dir.append(home.empty() ? std::string_view(".") : std::string_view(home));
        dir.append("/.local/state");
    }
    dir.append("/kms-replay");
    return dir;
}

std::string identity_path(const std::string& state_dir) {
    std::string path = state_dir;
    path += "/identity";
    return path;
}

StoredIdentity generate_identity(std::uint32_t host_build, std::uint32_t lcid, FileTime now, RandomSource& rng) {
    StoredIdentity id;
    id.host_build = host_build;
    id.lcid = lcid;
    // 8 opaque bytes (clients do not validate them); bounded retry in the 2^-63 case of one of the HwIds
    // the core's fingerprint attributes to an emulator (kVlmcsdDefaultHwId, kPykmsOldHwId).
    for (int i = 0; i < 8; ++i) {
        rng.fill(id.hwid.bytes);
        if (id.hwid != kVlmcsdDefaultHwId && id.hwid != kPykmsOldHwId && id.hwid != HwId{}) break;
    }
    for (const auto& f : csvlk_families()) id.epids[std::string(f.name)] = generate_epid(f, host_build, lcid, now, rng);
    return id;
}

std::optional<StoredIdentity> read_identity(const std::string& path, std::string& error) {
    GKeyFile* kf = g_key_file_new();
    GError* e = nullptr;
    std::optional<StoredIdentity> out;
    if (!g_key_file_load_from_file(kf, path.c_str(), G_KEY_FILE_NONE, &e)) {
        error = path + ": " + (e ? e->message : "cannot load");
    } else {
        StoredIdentity id;
        gchar* hw = g_key_file_get_string(kf, "identity", "hwid", nullptr);
        auto parsed = hw ? HwId::parse(hw) : std::nullopt;
        g_free(hw);
        GError* e1 = nullptr;
        GError* e2 = nullptr;
        gint64 build = g_key_file_get_int64(kf, "identity", "host-build", &e1);
        gint64 lcid = g_key_file_get_int64(kf, "identity", "lcid", &e2);
        bool ok = parsed && !e1 && !e2 && build >= 0 && build <= 65535 && lcid >= 0 && lcid <= 65535;
        if (e1) g_error_free(e1);
        if (e2) g_error_free(e2);
        if (ok) {
            id.hwid = *parsed;
            id.host_build = static_cast<std::uint32_t>(build);
            id.lcid = static_cast<std::uint32_t>(lcid);
            for (const auto& f : csvlk_families()) {
                std::string name(f.name);
                gchar* v = g_key_file_get_string(kf, "epid", name.c_str(), nullptr);
                if (v && parse_epid(v))
                    id.epids[name] = v;
                else
                    ok = false;
                g_free(v);
                if (!ok) {
                    error = path + ": [epid] " + name + " missing or malformed";
                    break;
                }
            }
        } else {
            error = path + ": [identity] hwid, host-build or lcid missing or malformed";
        }
        if (ok) out = std::move(id);
    }
    if (e) g_error_free(e);
    g_key_file_free(kf);
    return out;
}

bool write_identity(const std::string& path, const StoredIdentity& id, std::string& error) {
    std::string text =
        "# kms-replay's own KMS host identity, generated once for this installation and reused at every\n"
        "# start. Delete this file to generate a new one; --hwid, --epid, --family-hwid, the INI file and\n"
        "# --from override it.\n[identity]\nhwid=";
    text += id.hwid.to_string();
    text += "\nhost-build=";
    text += std::to_string(id.host_build);
    text += "\nlcid=";
    text += std::to_string(id.lcid);
    text += "\n\n[epid]\n";
    for (const auto& [fam, epid] : id.epids) {
        text += fam;
        text += '=';
        text += epid;
        text += '\n';
    }
    std::string tmp = path;
    tmp += ".tmp.";
    tmp += std::to_string(getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = tmp + ": " + std::strerror(errno);
        return false;
    }
    // Written in full and on disk before the rename makes it visible: a crash leaves the old file or the new.
    bool ok = write_all(fd, text) && ::fsync(fd) == 0;
    int saved = errno;
    ::close(fd);
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        if (ok) saved = errno;
        error = path + ": " + std::strerror(saved);
        ::unlink(tmp.c_str());
        return false;
    }
    // The rename itself is durable once the folder is synced.
    std::string dir = std::filesystem::path(path).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return true;
}

std::optional<StoredIdentity> load_or_create_identity(const std::string& state_dir, std::uint32_t host_build,
                                                      std::uint32_t lcid, FileTime now, RandomSource& rng,
                                                      std::string& note, std::string& error) {
    note.clear();
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec) {
        error = "state directory " + state_dir + ": " + ec.message();
        return std::nullopt;
    }
    const std::string path = identity_path(state_dir);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        auto id = read_identity(path, error);
        if (!id) return std::nullopt;  // never overwrite a file we cannot read: the operator decides
        if (id->host_build == host_build && id->lcid == lcid) return id;
        // The host "was reinstalled" with another build or locale: new ePIDs, same hardware.
        auto fresh = generate_identity(host_build, lcid, now, rng);
        fresh.hwid = id->hwid;
        if (!write_identity(path, fresh, error)) return std::nullopt;
        note = "ePIDs generated again for host build " + std::to_string(host_build) + ", LCID " + std::to_string(lcid) +
               " (stored for build " + std::to_string(id->host_build) + ", LCID " + std::to_string(id->lcid) + ") in " +
               path;
        return fresh;
    }
    if (errno != ENOENT) {
        error = path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    auto id = generate_identity(host_build, lcid, now, rng);
    if (!write_identity(path, id, error)) return std::nullopt;
    note = "generated a new host identity (HwId " + id.hwid.to_string() + ") in " + path;
    return id;
}

}  // namespace kmscope::replay
