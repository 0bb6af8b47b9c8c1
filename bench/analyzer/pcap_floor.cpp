// The floor of kms-analyze's throughput (issue 10): a bare libpcap loop over the same file, one
// pcap_next_ex per packet and nothing else. Whatever kms-analyze does beyond reading costs time above
// this; run.py --floor reports kms-analyze's throughput as a fraction of it.
//
// usage: pcap_floor FILE   (prints {"packets": N, "bytes": N} on standard output)
#include <pcap/pcap.h>

#include <cstdint>
#include <cstdio>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: pcap_floor FILE\n");
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(argv[1], err);
    if (!p) {
        std::fprintf(stderr, "pcap_floor: %s\n", err);
        return 2;
    }
    std::uint64_t packets = 0, bytes = 0;
    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    int rc;
    while ((rc = pcap_next_ex(p, &header, &data)) == 1) {
        ++packets;
        bytes += header->caplen;  // touches the header only, as a loop that must look at each packet
    }
    if (rc == PCAP_ERROR) std::fprintf(stderr, "pcap_floor: %s\n", pcap_geterr(p));
    pcap_close(p);
    std::printf("{\"packets\": %llu, \"bytes\": %llu}\n", static_cast<unsigned long long>(packets),
                static_cast<unsigned long long>(bytes));
    return rc == PCAP_ERROR ? 1 : 0;
}
