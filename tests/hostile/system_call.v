// Runs a shell command from the simulator.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  initial $system("touch @CANARY_DIR@/pwned_system.txt");
  assign y = a ^ b;
endmodule
