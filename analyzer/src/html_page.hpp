// --html: the page under construction and the SVG charts (html_svg.cpp) that html_page.cpp puts in it.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>

#include "html_escape.hpp"
#include "html_report.hpp"

namespace kmscope::analyzer::html {

/// Fill colours of the verdict classes, in VerdictClass order (the legend and every chart use them).
inline constexpr std::array<const char*, kVerdictClasses> kColours{"#2e7d32", "#c62828", "#ef6c00",
                                                                   "#6a1b9a", "#757575", "#0277bd"};

/// `v` with `digits` decimals, for SVG coordinates and labels.
inline std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

// The page, built in memory (a few MB at most: every list in it is capped) and written at once.
class Page {
public:
    /// The tool's own markup or text (no capture data).
    Page& raw(std::string_view s) {
        out_ += s;
        return *this;
    }
    /// Text that may come from a capture: escaped.
    Page& text(std::string_view s) {
        append_html_escaped(out_, s);
        return *this;
    }
    Page& n(std::uint64_t v) { return raw(std::to_string(v)); }
    Page& f(double v, int digits = 1) { return raw(fixed(v, digits)); }
    /// A sortable table with a filter box above it; `columns` are header labels (the tool's own text).
    void table_start(std::string_view id, std::initializer_list<std::string_view> columns) {
        raw("<div><input class=\"filter\" type=\"search\" placeholder=\"filter rows\" data-table=\"").raw(id);
        raw("\"> <span class=\"meta\"><span id=\"").raw(id).raw("-shown\"></span></span></div>\n");
        raw("<table class=\"sortable\" id=\"").raw(id).raw("\"><thead><tr>");
        for (auto c : columns) raw("<th>").raw(c).raw("</th>");
        raw("</tr></thead><tbody>\n");
    }
    void table_end() { raw("</tbody></table>\n"); }
    Page& td(std::string_view s) { return raw("<td>").text(s).raw("</td>"); }
    Page& td_n(std::uint64_t v) { return raw("<td class=\"n\">").n(v).raw("</td>"); }
    /// Rows past a cap: said in the page, and counted in data-left-out for scripts and tests.
    void left_out(std::uint64_t count, std::string_view what, std::size_t cap) {
        if (!count) return;
        raw("<p class=\"note\" data-left-out=\"").n(count).raw("\">").n(count).raw(" more ").raw(what);
        raw(" not listed: the page keeps the first ").n(cap).raw(".</p>\n");
    }
    const std::string& str() const { return out_; }

private:
    std::string out_;
};

/// Exchanges per time bucket, stacked by verdict class.
void time_chart(Page& p, const TimeSeries& series);
/// The latency histogram.
void latency_chart(Page& p, const LatencyHistogram& h);
/// Per KMS ID: the count a genuine host would hold, against the N policy the clients asked for.
void kms_id_chart(Page& p, const Summary& s, const ProductTable& products);

}  // namespace kmscope::analyzer::html
