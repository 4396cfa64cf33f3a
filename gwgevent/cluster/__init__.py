"""The GatewayWorker roles over the runtime: Register, Gateway (role + its sans-IO state machine
`gateway_core`), BusinessWorker, and the codec of the gateway <-> worker links."""
