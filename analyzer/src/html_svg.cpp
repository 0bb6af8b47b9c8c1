// --html: the charts, drawn as inline SVG (no chart library, nothing fetched).
#include <algorithm>
#include <string>

#include "html_page.hpp"

namespace kmscope::analyzer::html {

namespace {

void svg_start(Page& p, std::string_view id, int width, int height) {
    p.raw("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"").raw(id).raw("\" width=\"").n(width).raw("\" height=\"");
    p.n(height).raw("\" viewBox=\"0 0 ").n(width).raw(" ").n(height).raw("\" role=\"img\">\n");
}

// A bar with a tooltip; `title` is text from anywhere (escaped).
void rect(Page& p, double x, double y, double w, double h, std::string_view fill, std::string_view title) {
    p.raw("<rect x=\"").f(x, 2).raw("\" y=\"").f(y, 2).raw("\" width=\"").f(std::max(w, 0.5), 2).raw("\" height=\"");
    p.f(h, 2).raw("\" fill=\"").raw(fill).raw("\"><title>").text(title).raw("</title></rect>\n");
}

// A label; `anchor` is start, middle or end.
void label(Page& p, double x, double y, std::string_view text, std::string_view anchor = "start") {
    p.raw("<text x=\"").f(x).raw("\" y=\"").f(y).raw("\" text-anchor=\"").raw(anchor).raw("\">").text(text);
    p.raw("</text>\n");
}

std::string iso(std::int64_t unix_seconds) {
    return FileTime::from_unix(unix_seconds).to_iso8601();
}

}  // namespace

void time_chart(Page& p, const TimeSeries& s) {
    const auto& b = s.buckets();
    if (b.empty()) {
        p.raw("<p id=\"chart-time\" data-buckets=\"0\">No exchanges.</p>\n");
        return;
    }
    const std::int64_t first = b.begin()->first, last = b.rbegin()->first, w = s.width();
    const double buckets = static_cast<double>((last - first) / w + 1);
    std::uint64_t peak = 1;
    for (const auto& [t, c] : b) {
        std::uint64_t n = 0;
        for (auto v : c) n += v;
        peak = std::max(peak, n);
    }
    constexpr double W = 1000, H = 260, L = 50, R = 10, T = 10, B = 40, pw = W - L - R, ph = H - T - B;
    const double bw = pw / buckets;
    svg_start(p, "chart-time", 1000, 260);
    for (int i = 0; i <= 4; ++i) {
        const double y = T + ph - ph * i / 4;
        p.raw("<line x1=\"").f(L).raw("\" x2=\"").f(W - R).raw("\" y1=\"").f(y).raw("\" y2=\"").f(y);
        p.raw("\" stroke=\"#e0e0e0\"/>\n");
        label(p, L - 4, y + 4, fixed(static_cast<double>(peak) * i / 4, 0), "end");
    }
    const std::string per = std::to_string(w) + " s";
    for (const auto& [t, c] : b) {
        const double x = L + bw * static_cast<double>((t - first) / w);
        double y = T + ph;
        for (std::size_t k = 0; k < kVerdictClasses; ++k) {
            if (!c[k]) continue;
            const double h = ph * static_cast<double>(c[k]) / static_cast<double>(peak);
            y -= h;
            rect(p, x, y, bw - 1, h, kColours[k],
                 iso(t) + " + " + per + ": " + std::to_string(c[k]) + " " + verdict_class_name(VerdictClass(k)));
        }
    }
    label(p, L, H - 22, iso(first));
    label(p, W - R, H - 22, iso(last + w), "end");
    label(p, L + pw / 2, H - 6, "exchanges per " + per + " (UTC)", "middle");
    p.raw("</svg>\n");
}

void latency_chart(Page& p, const LatencyHistogram& h) {
    const auto& c = h.counts();
    const std::uint64_t peak = std::max<std::uint64_t>(1, *std::max_element(c.begin(), c.end()));
    constexpr double W = 1000, H = 220, L = 50, T = 10, B = 36, ph = H - T - B;
    const double bw = (W - L - 10) / static_cast<double>(c.size());
    svg_start(p, "chart-latency", 1000, 220);
    label(p, L - 4, T + 8, std::to_string(peak), "end");
    const auto& up = LatencyHistogram::kUpperMs;
    for (std::size_t i = 0; i < c.size(); ++i) {
        const double hp = ph * static_cast<double>(c[i]) / static_cast<double>(peak),
                     x = L + bw * static_cast<double>(i);
        std::string bin = i < up.size() ? "\u2264" : ">";
        bin += i < up.size() ? fixed(up[i], up[i] < 1 ? 1 : 0) : fixed(up.back(), 0);
        rect(p, x + 2, T + ph - hp, bw - 4, hp, "#1565c0", bin + " ms: " + std::to_string(c[i]));
        label(p, x + bw / 2, H - 20, bin, "middle");
    }
    label(p, W / 2, H - 4, "request to response, milliseconds (upper bound of each bin)", "middle");
    p.raw("</svg>\n");
}

void kms_id_chart(Page& p, const Summary& s, const ProductTable& products) {
    constexpr std::size_t kMaxBars = 40;  // the table below lists them all
    constexpr double W = 1000, L = 330, R = 60, row = 26, pw = W - L - R;
    const std::size_t n = std::min(s.kms_ids().size(), kMaxBars);
    if (n == 0) {
        p.raw("<p id=\"chart-kms-ids\">No KMS request was decoded.</p>\n");
        return;
    }
    const int height = static_cast<int>(row * static_cast<double>(n) + 24);
    svg_start(p, "chart-kms-ids", 1000, height);
    std::size_t i = 0;
    for (const auto& [id, k] : s.kms_ids()) {
        if (i == n) break;
        const double y = 8 + row * static_cast<double>(i++);
        const std::uint32_t count = s.current_count(id, k), need = k.n_policy;
        const double scale = pw / std::max<double>({2.0 * need, static_cast<double>(count), 1.0});
        const auto g = Guid::parse(id);
        label(p, L - 8, y + 14, g ? products.name_or_guid(*g) : id, "end");
        p.raw("<rect x=\"")
            .f(L)
            .raw("\" y=\"")
            .f(y + 2)
            .raw("\" width=\"")
            .f(pw)
            .raw("\" height=\"16\" fill=\"#f5f5f5\"/>\n");
        rect(p, L, y + 2, scale * count, 16, count >= need ? kColours[0] : kColours[2],
             id + ": current count " + std::to_string(count) + ", N policy " + std::to_string(need));
        const double x = L + scale * need;
        p.raw("<line x1=\"").f(x).raw("\" x2=\"").f(x).raw("\" y1=\"").f(y).raw("\" y2=\"").f(y + 20);
        p.raw("\" stroke=\"#212121\" stroke-width=\"2\"/>\n");
        label(p, W - R + 6, y + 14, std::to_string(count) + " / " + std::to_string(need));
    }
    label(
        p, L, static_cast<double>(height) - 4,
        "bar: count a genuine host would hold now; line: the N policy clients need (25 Windows, 5 servers and Office)");
    p.raw("</svg>\n");
    if (s.kms_ids().size() > n)
        p.raw("<p class=\"note\">The chart shows the first ").n(n).raw(" KMS IDs; the table lists them all.</p>\n");
}

}  // namespace kmscope::analyzer::html
