//! `mcp-echo`: the small stdio MCP server of `mcpctl::echo`, as a binary of its own.

fn main() {
    let args = std::env::args().skip(1).collect();
    std::process::exit(mcpctl::echo::main(args));
}
