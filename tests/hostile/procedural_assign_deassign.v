// Procedural assign/deassign (continuous overrides from a process).
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  reg [7:0] r;
  initial begin assign r = 0; deassign r; end
  assign y = a ^ b;
endmodule
