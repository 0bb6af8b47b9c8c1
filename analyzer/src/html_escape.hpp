// Text into HTML: every string that came from a capture (workstation names, DNS names, ePIDs, file names)
// may hold markup; in an element's text or a quoted attribute value it must stay text.
#pragma once

#include <string>
#include <string_view>

#include "kmscope/bytes.hpp"

namespace kmscope::analyzer {

/// Appends `s` to `out` with &, <, >, " and ' as character references and invalid UTF-8 as U+FFFD;
/// safe in element content and in single- or double-quoted attribute values (never inside <script>).
inline void append_html_escaped(std::string& out, std::string_view s) {
    std::string clean;
    if (!is_valid_utf8(s)) s = clean = sanitize_utf8(s);
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            case '\0':
                out += "\xEF\xBF\xBD";
                break;  // HTML parsers drop or replace NUL; say so visibly
            default:
                out += c;
        }
    }
}

inline std::string html_escaped(std::string_view s) {
    std::string out;
    append_html_escaped(out, s);
    return out;
}

}  // namespace kmscope::analyzer
