# Toolchain targets, included by the top-level Makefile: Icarus Verilog 12.0 and Verilator.
# verilog_tools.tools.find_tool looks in $ITERTL_TOOLS_DIR, then .tools/iverilog-12/bin, then PATH,
# so nothing here touches PATH.

# apt needs root; as a normal user go through sudo.
SUDO ?= $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: tools tools-clean

tools: ## ensure Icarus Verilog 12.0 (built into .tools/iverilog-12 unless PATH has 12.x), Verilator and bubblewrap
	tools/build_iverilog.sh
	@missing=""; command -v verilator >/dev/null || missing=" verilator"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	if [ -n "$$missing" ]; then \
	  echo "tools: installing$$missing from apt"; \
	  $(SUDO) apt-get update -qq; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@echo "tools: verilator in use: $$(command -v verilator) ($$(verilator --version))"
	@echo "tools: bubblewrap in use (the simulators' containment): $$(command -v bwrap) ($$(bwrap --version))"
ifneq ($(wildcard verilog_tools/tools.py),)
	@$(PYTHON) -c 'from verilog_tools.tools import tool_versions; print("tools: the suite runs with", tool_versions())'
endif

tools-clean: ## delete .tools/iverilog-12 and the cached source archive (the next make tools rebuilds)
	rm -rf .tools/iverilog-12 .cache/tools
