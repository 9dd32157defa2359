//! `demo-release <dir> [releaseVersion] [pipelineId]`: writes a demo release
//! beneath `dir` and prints the register request body to send.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: demo-release <absolute dir beneath a registration root> [releaseVersion] [pipelineId]");
        std::process::exit(2);
    };
    let mut spec = demo_release::DemoSpec::default();
    if let Some(v) = args.next() {
        spec.release_version = v;
    }
    if let Some(p) = args.next() {
        spec.pipeline_id = p;
    }
    let dir = std::path::absolute(&dir).expect("absolute path");
    match demo_release::write_release(&dir, &spec) {
        Ok(r) => {
            let body = serde_json::json!({"releaseDescriptorPath": r.descriptor_path});
            println!("{body}");
        }
        Err(e) => {
            eprintln!("demo-release: {e}");
            std::process::exit(1);
        }
    }
}
