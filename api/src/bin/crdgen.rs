//! Prints every ferrolb CRD as multi-document YAML (the content of `deploy/crds.yaml`).

use std::io::Write;

fn main() -> std::process::ExitCode {
    match ferrolb_api::crds::yaml() {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(text.as_bytes()).is_err() {
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
