// kms-analyze --html: capture-derived text stays text in the report (analyzer/src/html_escape.hpp).
#include <gtest/gtest.h>

#include "html_escape.hpp"

using kmscope::analyzer::html_escaped;

TEST(HtmlEscape, MarkupBecomesText) {
    EXPECT_EQ(html_escaped("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
    EXPECT_EQ(html_escaped("a\"b&c"), "a&quot;b&amp;c");
    EXPECT_EQ(html_escaped("&amp;"), "&amp;amp;");  // already escaped text is escaped again: it is text
}

TEST(HtmlEscape, PlainAndUtf8Unchanged) {
    EXPECT_EQ(html_escaped("TESTPC-W10.lab.local"), "TESTPC-W10.lab.local");
    EXPECT_EQ(html_escaped("B\xC3\xBCro"), "B\xC3\xBCro");
    EXPECT_EQ(html_escaped(""), "");
}

TEST(HtmlEscape, InvalidUtf8AndNulReplaced) {
    EXPECT_EQ(html_escaped("a\xFF<"), "a\xEF\xBF\xBD&lt;");
    EXPECT_EQ(html_escaped(std::string_view("a\0b", 3)),
              "a\xEF\xBF\xBD"
              "b");
}
