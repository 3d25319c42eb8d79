//! `sendmail`: the sendmail-compatible submission command; see `mta::frontend`.

fn main() {
    std::process::exit(mta::frontend::main("sendmail", mta::frontend::Mode::Deliver));
}
