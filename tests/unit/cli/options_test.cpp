// Pure helpers of the CLI front: identifiers, durations, redaction, metrics text.
#include <doctest/doctest.h>

#include "cli/db_options.h"
#include "cli/key_source.h"
#include "cli/metrics_file.h"
#include "cli/targets.h"
#include "common/duration.h"
#include "common/errors.h"
#include "common/identifier.h"
#include "common/log.h"
#include "db/connection.h"

namespace rekey {

TEST_SUITE("cli.options") {
  TEST_CASE("parse_column_ref follows SQL identifier rules") {
    const auto plain = parse_column_ref("Users.Phone_Enc");
    CHECK(plain.schema == "public");
    CHECK(plain.table == "users");
    CHECK(plain.column == "phone_enc");
    const auto quoted = parse_column_ref(R"("Vault Data"."Accounts"."Routing ""Enc""")");
    CHECK(quoted.schema == "Vault Data");
    CHECK(quoted.table == "Accounts");
    CHECK(quoted.column == "Routing \"Enc\"");
    const auto dotted = parse_column_ref(R"(s."a.b".c)");
    CHECK(dotted.table == "a.b");
    CHECK_THROWS_AS(parse_column_ref("users"), std::invalid_argument);
    CHECK_THROWS_AS(parse_column_ref("a.b.c.d"), std::invalid_argument);
    CHECK_THROWS_AS(parse_column_ref(R"("unterminated.x)"), std::invalid_argument);
    CHECK_THROWS_AS(parse_column_ref("users..phone"), std::invalid_argument);
    CHECK_THROWS_AS(parse_column_ref("my table.phone"), std::invalid_argument);
  }

  TEST_CASE("quote_ident quotes what PostgreSQL would not read back unchanged") {
    CHECK(quote_ident("a\"b") == "\"a\"\"b\"");
    CHECK(quote_ident_if_needed("phone_enc") == "phone_enc");
    CHECK(quote_ident_if_needed("Phone") == "\"Phone\"");
    CHECK(quote_ident_if_needed("user") == "\"user\"");
    CHECK(quote_ident_if_needed("Routing Enc") == "\"Routing Enc\"");
  }

  TEST_CASE("group_targets handles several columns of one table in one pass") {
    const auto t = group_targets({"users.phone_enc", "public.accounts.iban_enc", "users.ssn_enc"});
    REQUIRE(t.size() == 2);
    CHECK(t[0].columns == std::vector<std::string>{"phone_enc", "ssn_enc"});
    CHECK(targets_key(t) == targets_key(group_targets({"users.ssn_enc", "accounts.iban_enc", "users.phone_enc"})));
    CHECK_THROWS_AS(group_targets({"nodot"}), UsageError);
  }

  TEST_CASE("parse_duration takes ms, s, m, h and bare seconds") {
    CHECK(parse_duration("90s", "--x").count() == 90000);
    CHECK(parse_duration("45m", "--x").count() == 45 * 60000);
    CHECK(parse_duration("2h", "--x").count() == 2 * 3600000);
    CHECK(parse_duration("250ms", "--x").count() == 250);
    CHECK(parse_duration("1.5", "--x").count() == 1500);
    CHECK_THROWS_AS(parse_duration("soon", "--x"), UsageError);
    CHECK_THROWS_AS(parse_duration("5y", "--x"), UsageError);
    CHECK_THROWS_AS(parse_duration("-1s", "--x"), UsageError);
  }

  TEST_CASE("redacted_command hides the database password in both conninfo forms") {
    const std::string kw = redacted_command({"rekey", "rotate", "--db", "host=db password=hunter2 user=app"});
    CHECK(kw.find("hunter2") == std::string::npos);
    CHECK(kw.find("user=app") != std::string::npos);
    const std::string uri = redacted_command({"rekey", "rotate", "--db=postgresql://app:hunter2@db/prod"});
    CHECK(uri.find("hunter2") == std::string::npos);
    CHECK(uri.find("@db/prod") != std::string::npos);
    CHECK(redacted_command({"rekey", "--column", "\"Vault Data\".t.c"}) == "rekey --column '\"Vault Data\".t.c'");
  }

  TEST_CASE("error_summary keeps the first line of an error, never a server DETAIL that quotes a row") {
    const std::runtime_error e(
        "ERROR:  new row violates check constraint \"c\"\nDETAIL:  Failing row contains (7, secret)");
    const std::string s = db::error_summary(e);
    CHECK(s == "ERROR:  new row violates check constraint \"c\"");
    CHECK(s.find("secret") == std::string::npos);
  }

  TEST_CASE("render_metrics writes Prometheus text with fingerprints and per-outcome values") {
    RunReport r;
    r.run_id = 7;
    r.status = db::RunStatus::kFinished;
    r.new_key_fingerprint = "abcd1234";
    r.old_key_fingerprints = {"00ff00ff"};
    r.duration_seconds = 2;
    TableReport t;
    t.table = "public.\"Users\"";
    t.columns = {"phone_enc"};
    t.counts = {ColumnCounts{5, 1, 2, 0, 0}};
    t.rows_seen = 8;
    r.tables.push_back(t);
    const std::string text = render_metrics(r, "rotate", 1000, true);
    CHECK(text.find("# TYPE rekey_values gauge") != std::string::npos);
    CHECK(text.find(R"(table="public.\"Users\"",column="phone_enc",outcome="rotated"} 5)") != std::string::npos);
    CHECK(text.find(R"(old_keys="00ff00ff")") != std::string::npos);
    CHECK(text.find("rekey_rows_per_second{command=\"rotate\",run_id=\"7\",new_key=\"abcd1234\"} 4.0") !=
          std::string::npos);
    CHECK(text.find("rekey_exit_code") != std::string::npos);
  }

  TEST_CASE("printable: control characters and backslashes escaped, everything else as is") {
    CHECK(rekey::log::printable("a\nb\\c\td\x7f\x01 \xc3\xbc") == "a\\x0ab\\x5cc\\x09d\\x7f\\x01 \xc3\xbc");
    CHECK(rekey::log::printable("public.\"Phone Numbers\"") == "public.\"Phone Numbers\"");
  }

  TEST_CASE("key files: .env form read by its ENCRYPTION_KEY line (or --key-name), one bare line, else refused") {
    using rekey::crypto::to_secret;
    const auto key = [](const std::string& text, const std::string& name = "ENCRYPTION_KEY") {
      const auto k = rekey::key_in_file_text(to_secret(text), name, "key file f");
      return std::string(k.begin(), k.end());
    };
    CHECK(key("SECRET_KEY=s3cr3t\nENCRYPTION_KEY=the passphrase\n") == "the passphrase");
    CHECK(key("# made by rekey keygen\r\nexport ENCRYPTION_KEY=\"quoted one\"\r\n") == "quoted one");
    CHECK(key("SECRET_KEY=s3cr3t\nENCRYPTION_KEY=x", "SECRET_KEY") == "s3cr3t");
    CHECK(key("just-one-line passphrase=with an equals sign") == "just-one-line passphrase=with an equals sign");
    CHECK_THROWS_WITH_AS(key("SECRET_KEY=s3cr3t\n"), doctest::Contains("no ENCRYPTION_KEY= line"), rekey::UsageError);
    CHECK_THROWS_WITH_AS(key("line one\nline two\n"), doctest::Contains("several lines"), rekey::UsageError);
    try {
      key("SECRET_KEY=s3cr3t-value\n");
    } catch (const rekey::UsageError& e) {
      CHECK_FALSE(std::string(e.what()).find("s3cr3t") != std::string::npos);  // the message never holds key text
    }
  }
}

}  // namespace rekey
