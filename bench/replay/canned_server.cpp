// The ceiling for kms-replay serve (issue 10): an epoll server that answers without parsing or crypto.
// It frames client bytes by frag_length and answers the n-th PDU of a connection with the n-th server
// PDU recorded in a capture (call id copied from the client's PDU), so that `kms-replay send` replaying
// that same capture gets answers that verify. run_bench.py --canned runs it under the same load as
// serve and reports serve's throughput as a fraction of this one's.
//
// usage: canned_server PORT ANSWERS   (ANSWERS: replay_pdus output, "conn dir hex" lines; the server
//                                      PDUs of connection 0 are the answers). Listens on 127.0.0.1:PORT.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;

std::vector<Bytes> load_answers(const char* path) {
    std::vector<Bytes> answers;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string conn, dir, hex;
        if (!(fields >> conn >> dir >> hex) || conn != "0" || dir != "S") continue;
        Bytes pdu;
        for (std::size_t i = 0; i + 1 < hex.size(); i += 2) pdu.push_back(std::stoi(hex.substr(i, 2), nullptr, 16));
        answers.push_back(std::move(pdu));
    }
    return answers;
}

struct Conn {
    Bytes in, out;
    std::size_t sent = 0, pdus = 0;
};

volatile std::sig_atomic_t g_stop = 0;

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: canned_server PORT ANSWERS\n");
        return 2;
    }
    const auto answers = load_answers(argv[2]);
    if (answers.empty()) {
        std::fprintf(stderr, "canned_server: no server PDUs of connection 0 in %s\n", argv[2]);
        return 2;
    }
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    std::signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 1024) != 0) {
        std::perror("canned_server: listen");
        return 2;
    }
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    std::map<int, Conn> conns;
    epoll_event events[256];
    while (!g_stop) {
        int n = epoll_wait(ep, events, 256, 200);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    conns[c];
                }
                continue;
            }
            Conn& c = conns[fd];
            std::uint8_t buf[16384];
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got <= 0) {
                close(fd);  // also leaves the epoll set
                conns.erase(fd);
                continue;
            }
            c.in.insert(c.in.end(), buf, buf + got);
            // Frame by frag_length (bytes 8-9, little-endian); answer each PDU with the canned one.
            std::size_t pos = 0;
            while (c.in.size() - pos >= 16) {
                std::size_t len = c.in[pos + 8] | (c.in[pos + 9] << 8);
                if (len < 16 || c.in.size() - pos < len) break;
                Bytes answer = answers[c.pdus++ % answers.size()];
                std::memcpy(answer.data() + 12, c.in.data() + pos + 12, 4);  // call id
                c.out.insert(c.out.end(), answer.begin(), answer.end());
                pos += len;
            }
            c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(pos));
            while (c.sent < c.out.size()) {
                ssize_t w = send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
                if (w <= 0) break;  // a loopback client reads its answers; a full buffer is retried next time
                c.sent += static_cast<std::size_t>(w);
            }
            if (c.sent == c.out.size()) {
                c.out.clear();
                c.sent = 0;
            }
        }
    }
    return 0;
}
