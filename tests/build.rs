//! The nginx end-to-end tests are an explicit opt-in: `WEIR_NGINX=1` compiles
//! them (cfg `weir_nginx`). Without it they do not exist, so a machine with
//! only Rust passes `cargo test --workspace`; with it and nginx missing they
//! fail loudly. `.ci/run` installs nginx and sets `WEIR_NGINX=1`.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(weir_nginx)");
    println!("cargo::rerun-if-env-changed=WEIR_NGINX");
    match std::env::var("WEIR_NGINX").as_deref() {
        Ok("1") => println!("cargo::rustc-cfg=weir_nginx"),
        Ok("0" | "") | Err(_) => {}
        Ok(other) => panic!("WEIR_NGINX must be 1 (run the nginx tests) or 0/unset, not {other:?}"),
    }
}
