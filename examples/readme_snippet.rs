// The README's "Use it as a library" snippet, verbatim except the port
// (8000 -> 26416: this audit may use only its own ports).
use ringmaster::{available_cpus, Cluster, Handler, Mode, Request, Response};

struct Hello;

impl Handler for Hello {
    fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) {
        res.header("Content-Type", "text/plain").body(b"hello world\n");
    }
}

fn main() -> std::process::ExitCode {
    Cluster::new().bind("127.0.0.1:26416").workers(available_cpus()).mode(Mode::RoundRobin).serve(|| Hello)
    // one handler value per worker process
}
