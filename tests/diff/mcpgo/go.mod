module mcpfence.test/mcpgo

go 1.19
