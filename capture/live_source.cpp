// Live capture for PacketSource: libpcap on a network interface, with the same decoding and the same
// for_each_segment() as a file, so that kms-analyze --live and file analysis share one engine.
#include <pcap/pcap.h>
#include <poll.h>

#include <stdexcept>

#include "packet_source.hpp"
#include "packet_source_input.hpp"

namespace kmscope::capture {

namespace {

// libpcap's errors for pcap_activate's warnings and errors, with the interface named.
std::string activate_error(pcap_t* p, int rc, const std::string& iface) {
    std::string why = rc == PCAP_ERROR_NO_SUCH_DEVICE      ? "no such device"
                      : rc == PCAP_ERROR_PERM_DENIED       ? "permission denied (needs root or CAP_NET_RAW)"
                      : rc == PCAP_ERROR_PROMISC_PERM_DENIED ? "permission denied for promiscuous mode"
                                                             : pcap_statustostr(rc);
    const char* detail = pcap_geterr(p);
    if (detail && *detail) why += std::string(" (") + detail + ")";
    return "live capture on " + iface + ": " + why;
}

}  // namespace

PacketSource::PacketSource(const LiveOptions& live) : path_("live:" + live.interface), live_(true) {
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_ = pcap_create(live.interface.c_str(), err);
    if (!pcap_) throw std::runtime_error("live capture on " + live.interface + ": " + err);
    // These fail only on an activated handle; newer libpcap headers ask for the result to be looked at.
    // Not immediate mode: it lost packets here (kernel drops on a quiet loopback); a packet waits at
    // most one poll interval in the kernel's buffer instead.
    if (pcap_set_snaplen(pcap_, live.snaplen) != 0 || pcap_set_promisc(pcap_, live.promiscuous ? 1 : 0) != 0 ||
        pcap_set_timeout(pcap_, live.poll_milliseconds) != 0) {
        pcap_close(pcap_);
        pcap_ = nullptr;
        throw std::runtime_error("live capture on " + live.interface + ": cannot set the capture options");
    }
    nanoseconds_ = pcap_set_tstamp_precision(pcap_, PCAP_TSTAMP_PRECISION_NANO) == 0;
    const int rc = pcap_activate(pcap_);
    if (rc < 0) {
        const std::string why = activate_error(pcap_, rc, live.interface);
        pcap_close(pcap_);
        pcap_ = nullptr;
        throw std::runtime_error(why);
    }
    // libpcap's own wait ignores its timeout on Linux (TPACKET_V3 waits for a full block or for traffic),
    // so a quiet interface would never return: read without blocking, and wait in wait_for_packets().
    if (pcap_setnonblock(pcap_, 1, err) != 0) {
        const std::string why = "live capture on " + live.interface + ": " + err;
        pcap_close(pcap_);
        pcap_ = nullptr;
        throw std::runtime_error(why);
    }
    poll_milliseconds_ = live.poll_milliseconds;
    if (!live.bpf_filter.empty()) {
        bpf_program program{};
        if (pcap_compile(pcap_, &program, live.bpf_filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0 ||
            pcap_setfilter(pcap_, &program) != 0) {
            const std::string why = "live capture on " + live.interface + ": filter '" + live.bpf_filter +
                                    "': " + pcap_geterr(pcap_);
            pcap_freecode(&program);
            pcap_close(pcap_);
            pcap_ = nullptr;
            throw std::runtime_error(why);
        }
        pcap_freecode(&program);
    }
}

void PacketSource::wait_for_packets() const {
    pollfd fd{pcap_get_selectable_fd(pcap_), POLLIN, 0};
    poll(&fd, 1, poll_milliseconds_);  // EINTR (a stop signal) or a timeout: the caller looks again
}

LiveStats PacketSource::live_stats() const {
    LiveStats out;
    pcap_stat st{};
    if (!live_ || !pcap_ || pcap_stats(pcap_, &st) != 0) return out;
    out.received = st.ps_recv;
    out.dropped = st.ps_drop;
    out.interface_dropped = st.ps_ifdrop;
    return out;
}

}  // namespace kmscope::capture
