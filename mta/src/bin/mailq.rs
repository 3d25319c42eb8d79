//! `mailq`: list the mail queue (`sendmail -bp`); see `mta::frontend`.

fn main() {
    std::process::exit(mta::frontend::main("mailq", mta::frontend::Mode::Queue));
}
