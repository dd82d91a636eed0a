#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <exception>

#include "cli/cli_choices.h"
#include "cli/command_registry.h"
#include "cli/db_options.h"
#include "cli/process_guard.h"
#include "common/errors.h"
#include "common/log.h"
#include "db/connection.h"

namespace rekey {
namespace {

// `message` with every value the command line gave (what follows '=' in an
// option, and every word that is not an option) replaced by "<value>".
std::string without_values(std::string message, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') {
      const std::size_t eq = arg.find('=');
      if (eq == std::string::npos) continue;
      arg = arg.substr(eq + 1);
    }
    if (arg.size() < 3) continue;
    for (std::size_t at = message.find(arg); at != std::string::npos; at = message.find(arg, at + 7)) {
      message.replace(at, arg.size(), "<value>");
    }
  }
  return message;
}

}  // namespace

int run_cli(int argc, char** argv) {
  harden_process();
  bound_heap_growth();
  remember_command_line(argc, argv);
  CLI::App app{"rekey: rotate the Fernet encryption key of data stored in PostgreSQL", "rekey"};
  app.set_version_flag("--version", REKEY_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  log::Format log_format = log::Format::kText;
  bool quiet = false;
  bool verbose = false;
  app.add_option("--log-format", log_format, "text or json")
      ->transform(
          choices(std::map<std::string, log::Format>{{"text", log::Format::kText}, {"json", log::Format::kJson}}));
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors");
  app.add_flag("-v,--verbose", verbose, "Debug messages too");
  app.parse_complete_callback([&] {
    log::configure(log_format, quiet ? log::Level::kWarn : verbose ? log::Level::kDebug : log::Level::kInfo);
  });

  int exit_code = to_int(ExitCode::kOk);
  register_commands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 quotes what it did not expect, `--new-key=<a key>` included:
    // the message names options, never the values given.
    log::error("{} (run with --help for more information)", without_values(e.what(), argc, argv));
    return to_int(ExitCode::kUsage);
  } catch (const UsageError& e) {
    log::error("{}", e.what());
    return to_int(ExitCode::kUsage);
  } catch (const Interrupted& e) {
    log::error("{}", e.what());
    return to_int(ExitCode::kStopped);
  } catch (const std::exception& e) {
    log::error("{}", db::error_summary(e));
    return to_int(ExitCode::kFailure);
  }
  return exit_code;
}

}  // namespace rekey
