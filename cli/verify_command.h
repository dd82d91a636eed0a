// `rekey verify`: a read-only census of target columns — how many values are
// NULL, under the new key, under each old key, undecryptable, or not tokens.
// Never writes, not even rekey's state schema.
#pragma once

namespace CLI {
class App;
}

namespace rekey {

void add_verify_command(CLI::App& root, int& exit_code);

// Makes every PostgreSQL session this process opens from now on default to
// READ ONLY transactions (PGOPTIONS -c default_transaction_read_only=on,
// unless the connection string sets `options` itself): a second guard, for
// the read-only commands (verify, discover, status), behind their own READ
// ONLY transactions.
void force_read_only_sessions();

}  // namespace rekey
