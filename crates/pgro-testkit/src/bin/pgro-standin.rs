//! `pgro-standin`: stand-ins the process kubelet runs for the operator scale harness (see
//! `pgro_testkit::standin`).

fn main() -> std::process::ExitCode {
    pgro_testkit::standin::main_with_args(std::env::args().skip(1).collect())
}
