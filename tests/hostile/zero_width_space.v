// Carries a character on which Verilog lexers disagree: refused before any check.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  wire w​ = 0;
  assign y = a ^ b;
endmodule
