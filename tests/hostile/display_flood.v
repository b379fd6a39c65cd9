// Unbounded output: every input change prints a million lines.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  always @(a, b) repeat (1000000) $display("flood flood flood flood flood flood flood flood flood flood");
  assign y = a ^ b;
endmodule
