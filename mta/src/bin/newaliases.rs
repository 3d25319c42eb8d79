//! `newaliases`: check the aliases file (`sendmail -bi`); see `mta::frontend`.

fn main() {
    std::process::exit(mta::frontend::main("newaliases", mta::frontend::Mode::Aliases));
}
