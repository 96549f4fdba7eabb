"""patchline as an inspection station on a production line's PLC.

station.py: the protocol-neutral model (triggers with a deadline, recipes, heartbeat, OK / NG /
ERROR with an error code; state.py holds its codes and snapshot). Protocol adapters expose it:
modbus.py (Modbus TCP server). docs/plc.md has the register map and the handshake.
"""
