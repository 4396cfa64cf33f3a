"""The Gateway API (`gateway_api.GatewayApi`: every PHP `Lib\\Gateway` method, written once over
a transport), the push client (`push.GatewayClient`, plain blocking sockets: no gevent) and the
process-wide API a facade call reaches (`current`). Imports nothing above the codecs."""
