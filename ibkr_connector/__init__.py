"""ibkr-connector: a supervised, Trio-based runtime for Interactive Brokers TWS / IB Gateway.

The public surface is re-exported here; everything else lives in the subpackages
(`protocol`, `supervisor`, `actors`, `simulator`). See docs/architecture.md.
"""

from .config import ConfigError, IBKRConfig, WatchdogConfig, load_config
from .runtime import Runtime, open_runtime

__all__ = ["ConfigError", "IBKRConfig", "Runtime", "WatchdogConfig", "load_config", "open_runtime"]
__version__ = "0.1.0"
